"""Hugging Face checkpoint -> GGUF (f16/bf16) -> a quant ladder, without torch.

The f16/bf16 step mirrors llama.cpp's ``convert_hf_to_gguf.py`` (``conversion/base.py``
TextModel, ``conversion/llama.py`` LlamaModel, ``conversion/qwen.py`` Qwen2Model/Qwen3Model, as
vendored by llama-cpp-python 0.3.36) on gguf-py, safetensors headers and numpy: same tensor names,
order, types and bytes (q/k rows permuted for the llama arch), same metadata keys, same tokenizer
(BPE pre-tokenizer chosen by the hash of ``get_vocab_base_pre``'s text, or SentencePiece).
``tests/io/test_convert_reference.py`` checks it bit for bit against the reference converter.

Tensors stream one at a time, in row chunks read with plain file reads (not mmap, so the page
cache is not charged to us), converted and written straight into the GGUF, so peak memory is
about one q/k matrix plus a chunk, not the checkpoint. Only safetensors are read: ``.bin``/
``.pt``/``.pth`` files are pickles, and unpickling runs code. Each output is written as
``NAME.incomplete`` and renamed when complete; ``manifest.json`` records every finished file,
so a killed run leaves no partial GGUF and a rerun reuses what is done.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.errors import (
    DiskFull,
    LlamaError,
    ModelFileNotFound,
    OutputExists,
    RuntimeUnavailable,
    SpecError,
    UnsupportedModel,
)
from edgekv.quant import KvType, WeightQuant

if TYPE_CHECKING:
    import gguf
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_QUANTS",
    "REFERENCE_IGNORED_KEYS",
    "SUPPORTED_ARCHITECTURES",
    "ConvertProgress",
    "ConvertResult",
    "Imatrix",
    "OutputFile",
    "convert_checkpoint",
    "convert_to_gguf",
    "load_imatrix",
    "pretokenizer_name",
    "quantize_gguf",
]

logger = logging.getLogger(__name__)

# HF architectures[0] -> llama.cpp arch (conversion/llama.py, conversion/qwen.py registrations).
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "Qwen3ForCausalLM": "qwen3",
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
}
DEFAULT_QUANTS: tuple[WeightQuant, ...] = tuple(
    WeightQuant(q) for q in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0")
)
OUTTYPES = ("F16", "BF16")
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
INCOMPLETE = ".incomplete"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CHUNK_BYTES = 32 << 20  # source bytes converted at a time
HEADER_SLACK_BYTES = 1 << 20

# Metadata keys in which edgekv's f16 output may differ from the reference converter's, and why
# (README_CONVERT.md repeats this list). The reference test compares every other key exactly.
REFERENCE_IGNORED_KEYS: dict[str, str] = {
    "tokenizer.ggml.normalizer_lowercase": "newer gguf-py key (BERT-style lowercasing); absent from "
    "gguf 0.19.0's GGUFWriter and unused by the Qwen/Llama/Mistral tokenizers edgekv converts",
    "tokenizer.ggml.normalizer_strip_accents": "as normalizer_lowercase",
}

# Hyperparameter defaults transformers' AutoConfig fills in (the reference reads AutoConfig's
# to_dict(), edgekv reads config.json): (head_dim default or None, max_position_embeddings).
_HF_DEFAULTS: dict[str, tuple[int | None, int]] = {
    "Qwen3ForCausalLM": (128, 32768),
    "Qwen2ForCausalLM": (None, 32768),
    "LlamaForCausalLM": (0, 2048),  # 0: hidden_size // num_attention_heads
    "MistralForCausalLM": (0, 131072),
}

# get_vocab_base_pre (conversion/base.py): the BPE pre-tokenizer is named by the sha256 of the
# token ids of this text. Copied from llama.cpp's table (convert_hf_to_gguf_update.py makes it); where
# a hash appears twice there the last match wins, so only that entry is kept (olmo, jina-v2-en).
CHKTXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'  # noqa: E501
PRETOKENIZER_HASHES: dict[str, str] = {
    "b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b": "chatglm-bpe",
    "81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516": "chatglm-bpe",
    "a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2": "glm4",
    "9ca2dd618e8afaf09731a7cf6e2105b373ba6a1821559f258b272fe83e6eb902": "glm4",
    "cdf5f35325780597efd76153d4d1c16778f766173908894c04afc20108536267": "glm4",
    "1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35": "minerva-7b",
    "7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664": "hunyuan",
    "bba3b3366b646dbdded5dbc42d59598b849371afc42f7beafa914afaa5b70aa6": "hunyuan-dense",
    "e6ddf9c6686791c12d698d34c31ab9be1fea9af5a3d9a6909783ab382198ae1c": "hy_v4",
    "a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6": "falcon-h1",
    "60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86": "falcon-h1",
    "3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896": "falcon-h1",
    "48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b": "falcon-h1",
    "81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890": "kimi-k2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "1444df51289cfa8063b96f0e62b1125440111bc79a52003ea14b6eac7016fd5f": "qwen35",
    "66b8d4e19ab16c3bfd89bce5d785fb7e0155e8648708a1f42077cb9fe002c273": "grok-2",
    "b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df": "jina-v2-de",
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": "gpt-2",
    "9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7": "lfm2",
    "846deafc5b0fa786186fa4ae6c7b49903cf2f1d1895bdb80b9120d60be135252": "gemma4",
    "0a766d034107bc736a3f2dc4968fd62e54a3570f1454443e0c5a4cc6bd7941ed": "spark2_5",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
    "8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed": "falcon",
    "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": "falcon3",
    "8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7": "bert-bge-large",
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3": "stablelm2",
    "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": "refact",
    "9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8": "command-r",
    "d772b220ace2baec124bed8cfafce0ead7d6c38a4b65ef11261cf9d5d62246d1": "tiny_aya",
    "52df12b4c8d4176e7481aab4b6e8454d1fd0a210a04a574f6d4e067d10e23c3e": "cohere2moe",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166": "olmo",
    "a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e": "dbrx",
    "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448": "jina-v1-en",
    "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f": "jina-v2-en",
    "171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643": "jina-v2-es",
    "27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6": "jina-v2-de",
    "a023e9fdc5a11f034d3ef515b92350e56fb2af1f66c6b6811a4444ea9bf8763d": "jina-v5-nano",
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",
    "c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360": "poro-chat",
    "7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a": "jina-v2-code",
    "7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee": "viking",
    "b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901": "jais",
    "bc5108ee1eb6a3d600cadd065f63190fbd0554dbc9e4bbd6a0d977970afc8d2a": "jais-2",
    "7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f": "codeshell",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7": "bloom",
    "bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21": "gpt3-finnish",
    "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae": "exaone",
    "fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085": "phi-2",
    "60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450": "chameleon",
    "8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65": "roberta-bpe",
    "ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb": "gigachat",
    "d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1": "megrez",
    "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5": "deepseek-v3",
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": "gpt-4o",
    "7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f": "superbpe",
    "1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15": "trillion",
    "96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224": "bailingmoe",
    "d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406": "llama4",
    "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": "pixtral",
    "d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec": "seed-coder",
    "b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf": "a.x-4.0",
    "f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4": "midm-2.0",
    "169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51": "lfm2",
    "2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb": "exaone4",
    "a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756": "mellum",
    "a0b64b4385f123663873756336c085744376d015ff328bb1d901598f63c44152": "modern-bert",
    "49fc0303c9e0d2c2c565c510f64b2d9b271276acdcdadff733249eda9f7d59df": "afmoe",
    "9b1be57e70d20d9501b2b3186e792d81181ae36ada3903c26f9fea418cf87206": "bailingmoe2",
    "53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e": "granite-docling",
    "f4f37b6c8eb9ea29b3eac6bb8c8487c5ab7885f8d8022e67edc1c68ce8403e95": "minimax-m2",
    "4a2e2abae11ca2b86d570fc5b44be4d5eb5e72cc8f22dd136a94b37da83ab665": "kormo",
    "9d70134b369a70e5735009b6de918f7581b5211f7c074d1f89f753aea8248af1": "youtu",
    "16389f0a1f51ee53e562ffd51c371dc508639ab0e4261502071836e50e223e91": "solar-open",
    "6c81ce329e0802883b22eabab0d3fa48357337ef1ecb45443828bf1f6254833f": "exaone-moe",
    "d30d75d9059f1aa2c19359de71047b3ae408c70875e8a3ccf8c5fba56c9d8af4": "qwen35",
    "b4b8ca1f9769494fbd956ebc4c249de6131fb277a4a3345a7a92c7dd7a55808d": "joyai-llm",
    "e4d54df1ebc1f2b91acd986c5b51aa50837d5faf7c7398e73c1f9e9ee5d19869": "kanana2",
    "862f827721df956049dff5ca81a57f29e575280bc622e290d3bf4e35eca29015": "f2llmv2",
    "62f6fb0a6fd5098caeabb19b07a5c1099cafc8b9c40eab6ea89ece4ec02fbc57": "sarvam-moe",
    "f728162c1315c26e40249849799b4ba3fe584c32084b4795b03eb295e63cb5af": "talkie",
    "36f3066e97b7f3994b379aaacde306c1444c6ae84e81a5ae3cd2b7ed3b8c42d4": "minicpm5",
    "f241072145675bf8322086f115aebad05e9f869557a238bf2150a2a417d1bf60": "granite-embed-multi-97m",
    "789696f5946cc0fc59371f39f6097cafed196b3acded6140432f26bbb1ae1669": "granite-embed-multi-311m",
    "9dcf830ee9990cdbf78cc523a5f7bd9ad8f3f9890c2d3581d2785ad10f07049d": "mellum2",
    "972da7b59cec44d1f0a490a86c96df53859e486e481563e5dddac155013d87ac": "laguna",
    "653660222fb704f61cbf2b618a8ae6502b7f8b20c980f9a5de07ed78e13319cd": "ufakzeka",
}  # fmt: skip


# --------------------------------------------------------------------------- public value types


@dataclass(frozen=True, slots=True)
class ConvertProgress:
    """One progress report: ``done_bytes`` of ``total_bytes`` of the file being written."""

    file_name: str
    stage: str  # "convert" (the f16/bf16 GGUF) or "quantize"
    done_bytes: int
    total_bytes: int
    file_index: int = 0  # 0-based position of this file in the ladder
    n_files: int = 1


ProgressFn = Callable[[ConvertProgress], None]


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One written (or reused) GGUF and the numbers pick/inspect need, as the manifest has them."""

    name: str
    path: Path
    quant: str
    sha256: str
    file_bytes: int
    weights_bytes: int
    tensor_type_bytes: dict[str, int]
    kv_bytes_per_token: dict[str, int]
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quant": self.quant,
            "sha256": self.sha256,
            "file_bytes": self.file_bytes,
            "weights_bytes": self.weights_bytes,
            "tensor_type_bytes": dict(self.tensor_type_bytes),
            "kv_bytes_per_token": dict(self.kv_bytes_per_token),
        }


@dataclass(frozen=True, slots=True)
class ConvertResult:
    """What :func:`convert_checkpoint` wrote: the files in ladder order and the manifest."""

    model_name: str
    arch: str
    outdir: Path
    manifest_path: Path
    files: tuple[OutputFile, ...]
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True, slots=True)
class Imatrix:
    """An importance matrix as llama.cpp's quantize tool hands it over: per-tensor mean squares."""

    path: Path
    entries: dict[str, NDArray[Any]]
    datasets: tuple[str, ...]
    chunk_count: int


# --------------------------------------------------------------------------- checkpoint reading


@dataclass(frozen=True, slots=True)
class _Source:
    """A tensor inside a safetensors file: where its bytes are and how to read them."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    n_bytes: int


_ST_DTYPES = {"F16": ("float16", 2), "BF16": ("uint16", 2), "F32": ("float32", 4), "F64": ("float64", 8)}


def _read_safetensors_header(path: Path) -> list[_Source]:
    """Parse one safetensors header (u64 length + JSON); tensors sorted by name like safe_open."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if n < 2 or n > 100 << 20 or 8 + n > size:
            raise ModelFileNotFound(f"{path}: not a complete safetensors file", hint="download it again")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            raise ModelFileNotFound(f"{path}: corrupt safetensors header", hint="download it again") from None
    out: list[_Source] = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        if 8 + n + end > size:
            raise ModelFileNotFound(f"{path}: truncated (tensor {name} ends past the file)", hint="download it again")
        out.append(_Source(name, path, meta["dtype"], tuple(meta["shape"]), 8 + n + begin, end - begin))
    return sorted(out, key=lambda t: t.name)


def _weight_files(ckpt: Path) -> list[Path]:
    """The safetensors files of a checkpoint (from the index if there is one); refuse pickles."""
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelFileNotFound(f"{index}: no weight_map", hint="download the index again")
        files = [ckpt / name for name in sorted(set(weight_map.values()))]
        for f in files:
            if not f.is_file():
                raise ModelFileNotFound(f"{f}: shard listed in {index.name} is missing", hint="download it")
        return files
    files = sorted(p for p in ckpt.glob("model*.safetensors") if p.is_file())
    if files:
        return files
    pickles = sorted(p.name for p in ckpt.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsupportedModel(
            f"{ckpt} holds only pickle checkpoints ({', '.join(pickles[:3])}); edgekv reads only safetensors, "
            "because loading a .bin/.pt/.pth file unpickles it and unpickling can run arbitrary code",
            hint="use the repository's safetensors files, or convert the pickle in a sandbox you trust",
        )
    raise ModelFileNotFound(f"{ckpt}: no model*.safetensors files", hint="download the model's weights")


def _index_tensors(ckpt: Path) -> list[_Source]:
    """Every tensor of the checkpoint, in the reference converter's order (files, then names)."""
    files = _weight_files(ckpt)
    tensors = [t for f in files for t in _read_safetensors_header(f)]
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        missing = sorted(set(weight_map) - {t.name for t in tensors})
        if missing:
            shards = sorted({weight_map[n] for n in missing})
            raise ModelFileNotFound(
                f"tensors {missing[:3]} are missing from {', '.join(shards)}", hint="download those shards again"
            )
    for t in tensors:
        if t.dtype not in _ST_DTYPES:
            raise UnsupportedModel(
                f"tensor {t.name} is {t.dtype}; edgekv converts F16/BF16/F32 checkpoints",
                hint="dequantize the checkpoint first, or use --converter with llama.cpp's script",
            )
    return tensors


def _read_rows(src: _Source, start: int, stop: int) -> NDArray[Any]:
    """Rows [start, stop) of a tensor (first axis), read with a plain file read."""
    import numpy as np

    dtype, itemsize = _ST_DTYPES[src.dtype]
    row_elems = 1
    for d in src.shape[1:]:
        row_elems *= d
    out = np.empty((stop - start, *src.shape[1:]) if src.shape else (), dtype=dtype)
    with src.path.open("rb", buffering=0) as f:
        f.seek(src.offset + start * row_elems * itemsize)
        view = memoryview(out.reshape(-1).view(np.uint8).data)
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                raise ModelFileNotFound(f"{src.path}: truncated while reading {src.name}", hint="download it again")
            got += n
    return out


# --------------------------------------------------------------------------- hyperparameters


def _load_config(ckpt: Path) -> tuple[dict[str, Any], str]:
    """config.json with AutoConfig's defaults for the fields the converter reads; (config, HF arch)."""
    path = ckpt / "config.json"
    if not path.is_file():
        raise ModelFileNotFound(f"{path}: missing", hint="a Hugging Face checkpoint needs its config.json")
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if "text_config" in config:
        config = {**config, **config["text_config"]}
    archs = config.get("architectures") or []
    hf_arch = archs[0] if archs else str(config.get("model_type"))
    if hf_arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModel(
            f"architecture {hf_arch} is not supported by edgekv's converter",
            hint=f"it converts {', '.join(SUPPORTED_ARCHITECTURES)}; try --converter with llama.cpp's "
            "convert_hf_to_gguf.py for others",
        )
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    if missing := [k for k in required if not isinstance(config.get(k), int)]:
        raise SpecError(f"{path} lacks {', '.join(missing)}", hint="is it a complete Hugging Face config?")
    head_dim, n_ctx = _HF_DEFAULTS[hf_arch]
    config.setdefault("num_key_value_heads", config.get("num_attention_heads"))
    config.setdefault("max_position_embeddings", n_ctx)
    config.setdefault("rope_theta", 10000.0)
    if head_dim is not None and "head_dim" not in config:
        config["head_dim"] = head_dim or config["hidden_size"] // config["num_attention_heads"]
    return config, hf_arch


def _find(config: dict[str, Any], keys: Sequence[str]) -> Any:
    return next((config[k] for k in keys if k in config), None)


_ROPE_THETA_KEYS = ("global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base")
_CTX_KEYS = ("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length")


def _rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """TextModel.__init__: rope_parameters / rope_scaling with the top-level values mirrored in."""
    rp = dict(config.get("rope_parameters", config.get("rope_scaling")) or {})
    if "full_attention" not in rp and "sliding_attention" not in rp:
        theta = _find(config, _ROPE_THETA_KEYS)
        if "rope_theta" not in rp and theta is not None:
            rp["rope_theta"] = theta
        if "rope_type" not in rp and rp.get("type") is not None:
            rp["rope_type"] = rp["type"]
        for key in ("partial_rotary_factor", "original_max_position_embeddings"):
            if key not in rp and config.get(key) is not None:
                rp[key] = config[key]
    return rp


def _add_hparams(w: gguf.GGUFWriter, config: dict[str, Any], hf_arch: str, ckpt: Path, ftype: int) -> None:
    """TextModel.set_gguf_parameters plus LlamaModel's / Qwen2Model's additions, key for key."""
    import gguf

    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(_find(config, _CTX_KEYS))
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    if config.get("is_causal") is False:
        w.add_causal_attention(False)
    rp = _rope_parameters(config)
    rope = rp.get("full_attention", rp)
    rope_type, factor = rope.get("rope_type"), rope.get("factor")
    if rope_type == "linear" and factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(factor)
    elif rope_type == "yarn" and factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(factor)
        w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
        if (v := rope.get("extrapolation_factor")) is not None:
            w.add_rope_scaling_yarn_ext_factor(v)
        if (v := rope.get("attention_factor", rope.get("attn_factor"))) is not None:
            w.add_rope_scaling_yarn_attn_factor(v)
        if (v := rope.get("beta_fast")) is not None:
            w.add_rope_scaling_yarn_beta_fast(v)
        if (v := rope.get("beta_slow")) is not None:
            w.add_rope_scaling_yarn_beta_slow(v)
    elif rope_type in ("su", "longrope"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
    if (theta := rope.get("rope_theta")) is not None:
        w.add_rope_freq_base(theta)
    if (eps := _find(config, ("rms_norm_eps", "norm_eps"))) is not None:
        w.add_layer_norm_rms_eps(eps)
    if (eps := _find(config, ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"))) is not None:
        w.add_layer_norm_eps(eps)
    if (head_dim := config.get("head_dim")) is not None:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(ftype)
    if SUPPORTED_ARCHITECTURES[hf_arch] == "llama":
        w.add_vocab_size(config["vocab_size"])
        w.add_rope_dimension_count(head_dim or config["hidden_size"] // config["num_attention_heads"])
    else:
        _add_pooling(w, ckpt)


def _add_pooling(w: gguf.GGUFWriter, ckpt: Path) -> None:
    """Qwen2Model._try_set_pooling_type: sentence-transformers checkpoints (e.g. Qwen3-Embedding)."""
    import gguf

    modules = ckpt / "modules.json"
    if not modules.is_file():
        return
    path = next((m["path"] for m in json.loads(modules.read_text()) if m["type"].endswith("Pooling")), None)
    if path is None:
        return
    pooling = json.loads((ckpt / path / "config.json").read_text())
    modes = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}
    flags = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_lasttoken": "lasttoken"}
    for key, mode in flags.items():
        if pooling.get(key):
            w.add_pooling_type(modes[mode])
            return
    if pooling.get("pooling_mode") in modes:
        w.add_pooling_type(modes[pooling["pooling_mode"]])
        return
    raise UnsupportedModel(f"{ckpt / path}: only mean, cls and last-token pooling are supported")


def _llama3_rope_factors(config: dict[str, Any]) -> NDArray[Any] | None:
    """LlamaModel.generate_extra_tensors: rope_freqs for rope_type "llama3" (Llama 3.1+)."""
    import math

    import numpy as np

    rope = _rope_parameters(config)
    rope = rope.get("full_attention", rope)
    if str(rope.get("rope_type", "")).lower() != "llama3":
        return None
    base = rope.get("rope_theta", 10000.0)
    dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    # torch's float32 pow agrees with the correctly rounded float64 result; the loop is float32
    # scalar arithmetic, as torch does with 0-d float32 tensors and Python numbers
    f32 = np.float32
    exps = (np.arange(0, dim, 2, dtype=f32) / f32(dim)).astype(np.float64)
    freqs = f32(1.0) / (np.float64(base) ** exps).astype(f32)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = f32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (f32(old_ctx) / wavelen - f32(low)) / f32(high - low)
            out.append(f32(1) / ((f32(1) - smooth) / f32(factor) + smooth))
    return np.array(out, dtype=np.float32)


# --------------------------------------------------------------------------- tensor plan


@dataclass(frozen=True, slots=True)
class _Planned:
    """One output tensor: GGUF name, source (None for generated), output type, numpy shape."""

    name: str
    source: _Source | None
    qtype: str  # "F32" | "F16" | "BF16"
    shape: tuple[int, ...]
    permute_heads: int = 0  # llama q/k: the n_head of LlamaModel.permute, 0 = no permutation
    data: Any = None  # a generated tensor (rope_freqs)

    @property
    def n_bytes(self) -> int:
        n = 4 if self.qtype == "F32" else 2
        for d in self.shape:
            n *= d
        return n


_SKIP_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")


def _plan_tensors(sources: list[_Source], config: dict[str, Any], hf_arch: str, outtype: str) -> list[_Planned]:
    """Names, types and shapes the reference converter gives each tensor (prepare_tensors)."""
    import gguf

    arch = SUPPORTED_ARCHITECTURES[hf_arch]
    tmap = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), config["num_hidden_layers"])
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    plan: list[_Planned] = []
    if arch == "llama" and (factors := _llama3_rope_factors(config)) is not None:
        rope_name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        plan.append(_Planned(rope_name, None, "F32", tuple(factors.shape), data=factors))
    for src in sources:
        hf_name = src.name.replace("language_model.", "")
        if arch == "llama":
            hf_name = hf_name.replace("text_model.", "")
        if hf_name.endswith(_SKIP_SUFFIXES):
            continue
        mapped = tmap.get_name(key=hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise UnsupportedModel(f"cannot map tensor {src.name!r} of {hf_arch} to a GGUF name")
        name = str(mapped)
        permute = 0
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            permute = n_head
        elif arch == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            permute = n_kv
        if len(src.shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
            qtype = "F32"  # 1-D tensors, norms and biases stay F32 (prepare_tensors)
        else:
            qtype = outtype
        plan.append(_Planned(name, src, qtype, src.shape, permute))
    return plan


def _permute(w: NDArray[Any], n_head: int) -> NDArray[Any]:
    """LlamaModel.permute: interleave the two rotary halves of each head's rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _to_f32(a: NDArray[Any], src_dtype: str) -> NDArray[Any]:
    import numpy as np

    if src_dtype == "BF16":
        wide = a.astype(np.uint32)
        np.left_shift(wide, 16, out=wide)
        return wide.view(np.float32)
    return a.astype(np.float32, copy=False)


def _convert_chunk(a: NDArray[Any], src_dtype: str, qtype: str) -> NDArray[Any]:
    """Source rows -> output bytes, as torch .to(float32) (non-f16 sources) + gguf.quants would."""
    import gguf
    import numpy as np

    if qtype == "F16":
        return a if src_dtype == "F16" else _to_f32(a, src_dtype).astype(np.float16)
    if qtype == "F32":
        return _to_f32(a, src_dtype)
    if src_dtype == "BF16":  # BF16 -> f32 -> BF16 is the identity, bar quieting NaNs as ggml does
        return np.where((a & 0x7FFF) > 0x7F80, a | 0x0040, a).astype(np.uint16)
    return np.asarray(gguf.quants.quantize(_to_f32(a, src_dtype), gguf.GGMLQuantizationType.BF16))


def _tensor_chunks(t: _Planned) -> Iterator[NDArray[Any]]:
    """The output bytes of one tensor, a few tens of MB at a time."""
    if t.source is None:
        yield t.data
        return
    src = t.source
    if t.permute_heads or len(src.shape) <= 1:
        a = _read_rows(src, 0, src.shape[0] if src.shape else 1)
        if t.permute_heads:
            a = _permute(a, t.permute_heads)
        yield _convert_chunk(a, src.dtype, t.qtype)
        return
    row_bytes = max(src.n_bytes // src.shape[0], 1)
    step = max(CHUNK_BYTES // row_bytes, 1)
    for start in range(0, src.shape[0], step):
        yield _convert_chunk(_read_rows(src, start, min(start + step, src.shape[0])), src.dtype, t.qtype)


# --------------------------------------------------------------------------- tokenizer


def _looks_special(token: str) -> bool:
    """TextModel.does_token_look_special."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def _tokenizers_module() -> Any:
    try:
        import tokenizers
    except ImportError as e:
        raise RuntimeUnavailable("converting a BPE tokenizer needs tokenizers", hint="pip install tokenizers") from e
    return tokenizers


def pretokenizer_name(tokenizer_json: str | os.PathLike[str], *, tokenizer: Any = None) -> str:
    """tokenizer.ggml.pre for a tokenizer.json, chosen like get_vocab_base_pre (hash of CHKTXT's ids)."""
    tok = tokenizer or _tokenizers_module().Tokenizer.from_file(str(tokenizer_json))
    chkhsh = hashlib.sha256(str(tok.encode(CHKTXT).ids).encode()).hexdigest()
    if chkhsh not in PRETOKENIZER_HASHES:
        raise UnsupportedModel(
            f"{tokenizer_json}: BPE pre-tokenizer not recognized (chkhsh {chkhsh})",
            hint="llama.cpp does not know this tokenizer's pre-tokenizer yet; see convert_hf_to_gguf_update.py",
        )
    return PRETOKENIZER_HASHES[chkhsh]


def _bpe_vocab(ckpt: Path, vocab_size: int | None) -> tuple[list[str], list[int], str]:
    """get_vocab_base: tokens, token types and pre-tokenizer name from tokenizer.json."""
    import gguf

    path = ckpt / "tokenizer.json"
    tok = _tokenizers_module().Tokenizer.from_file(str(path))
    vocab: dict[str, int] = tok.get_vocab(with_added_tokens=True)
    added = tok.get_added_tokens_decoder()
    n_vocab = vocab_size if vocab_size is not None else len(vocab)
    if max(vocab.values()) >= n_vocab:
        raise UnsupportedModel(f"{path}: token id {max(vocab.values())} does not fit vocab_size {n_vocab}")
    reverse = {i: t for t, i in vocab.items()}
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if i in added and added[i].content == token:
            if not added[i].normalized:  # llama.cpp expects added tokens pre-normalized
                token = tok.decode(tok.encode(token, add_special_tokens=False).ids, skip_special_tokens=False)
            if added[i].special or _looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")  # pre-normalize user-defined spaces
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types, pretokenizer_name(path, tokenizer=tok)


def _spm_vocab(ckpt: Path, vocab_size: int | None) -> tuple[list[bytes], list[float], list[int]]:
    """_create_vocab_sentencepiece: tokens, scores and types from tokenizer.model (+ added tokens)."""
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError as e:
        raise RuntimeUnavailable("reading tokenizer.model needs sentencepiece", hint="pip install sentencepiece") from e
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(ckpt / "tokenizer.model"))
    n = vocab_size or sp.vocab_size()
    tokens = [f"[PAD{i}]".encode() for i in range(n)]
    scores, types = [-10000.0] * n, [int(_SPM_UNUSED)] * n
    for i in range(min(sp.vocab_size(), n)):
        kind = 1  # NORMAL
        if sp.IsUnknown(i):
            kind = 2
        elif sp.IsControl(i):
            kind = 3
        elif sp.IsUnused(i):
            kind = 5
        elif sp.IsByte(i):
            kind = 6
        tokens[i], scores[i], types[i] = sp.IdToPiece(i).encode(), sp.GetScore(i), kind
    added_file = ckpt / "added_tokens.json"
    if added_file.is_file():
        for key, i in json.loads(added_file.read_text(encoding="utf-8")).items():
            if i < n:
                tokens[i], scores[i], types[i] = key.encode(), -1000.0, 4
    cfg_file = ckpt / "tokenizer_config.json"
    if cfg_file.is_file():
        decoder = json.loads(cfg_file.read_text(encoding="utf-8")).get("added_tokens_decoder", {})
        for key, data in decoder.items():
            i, token = int(key), data["content"]
            if i >= n:
                continue
            if data.get("special") or _looks_special(token):
                types[i] = 3
            else:
                token, types[i] = token.replace("\u2581", " "), 4
            scores[i], tokens[i] = -1000.0, token.encode()
    return tokens, scores, types


_SPM_UNUSED = 5  # SentencePieceTokenTypes: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6


def _special_vocab(ckpt: Path, *, load_merges: bool = False, n_vocab: int | None = None) -> gguf.SpecialVocab:
    """gguf.SpecialVocab with the newer rule of llama.cpp's bundled gguf-py: add_bos/add_eos flags
    implied by tokenizer.json's post_processor win over tokenizer_config's (ByteLevel -> False)."""
    import gguf

    sv = gguf.SpecialVocab(ckpt, load_merges=load_merges, n_vocab=n_vocab)
    tok_file, cfg_file = ckpt / "tokenizer.json", ckpt / "tokenizer_config.json"
    if not tok_file.is_file():
        return sv
    post = json.loads(tok_file.read_text(encoding="utf-8")).get("post_processor") or {}
    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}

    def content(key: str) -> Any:
        v = cfg.get(key)
        return v.get("content") if isinstance(v, dict) else v

    bos, cls = content("bos_token") or content("cls_token"), content("cls_token")
    flags: dict[str, bool] = {}
    for proc in post.get("processors", [post]):
        kind = proc.get("type")
        if kind == "ByteLevel":
            flags.setdefault("bos", False)
            flags.setdefault("eos", False)
        elif kind == "RobertaProcessing":
            flags.update(bos=True, eos=True, sep=True)
        elif kind == "TemplateProcessing" and len(single := proc.get("single", [])) > 1:
            if first := single[0].get("SpecialToken", {}).get("id"):
                flags["bos"] = not cfg or first in (bos, cls) or not bos or not cls
            if single[-1].get("SpecialToken", {}).get("id"):
                flags["eos"] = True
    sv.add_special_token.update(flags)
    return sv


def _add_vocab(w: gguf.GGUFWriter, ckpt: Path, config: dict[str, Any], hf_arch: str) -> None:
    """set_vocab of LlamaModel / Qwen2Model: SentencePiece if tokenizer.model exists, else BPE."""
    cfg_file = ckpt / "tokenizer_config.json"
    is_llama = SUPPORTED_ARCHITECTURES[hf_arch] == "llama"
    if is_llama and cfg_file.is_file():
        add_prefix_space = json.loads(cfg_file.read_text(encoding="utf-8")).get("add_prefix_space")
        if add_prefix_space is not None:
            w.add_add_space_prefix(add_prefix_space)
    vocab_size = config.get("vocab_size")
    if (ckpt / "tokenizer.model").is_file():
        tokens, scores, types = _spm_vocab(ckpt, vocab_size)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        _special_vocab(ckpt, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)
    elif (tok_file := ckpt / "tokenizer.json").is_file():
        model = json.loads(tok_file.read_text(encoding="utf-8")).get("model", {})
        if is_llama and model.get("type") == "BPE" and model.get("byte_fallback") and not model.get("ignore_merges"):
            raise UnsupportedModel(
                f"{tok_file} is a SentencePiece-style tokenizer without tokenizer.model",
                hint="add the tokenizer.model file, or use --converter with llama.cpp's script",
            )
        str_tokens, types, pre = _bpe_vocab(ckpt, vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(str_tokens)
        w.add_token_types(types)
        _special_vocab(ckpt, load_merges=True).add_to_gguf(w, quiet=True)
    else:
        raise ModelFileNotFound(f"{ckpt}: no tokenizer.json or tokenizer.model", hint="download the tokenizer files")
    if is_llama and vocab_size == 49152:  # LlamaModel.set_vocab: granite small models
        w.add_add_bos_token(False)


# --------------------------------------------------------------------------- the f16/bf16 GGUF


def _metadata(w: gguf.GGUFWriter, ckpt: Path, model_name: str | None) -> None:
    """ModelBase.prepare_metadata's general.* keys (gguf.Metadata heuristics + size label)."""
    import gguf

    total, shared, expert, n_expert = w.get_total_parameter_count()
    meta = gguf.Metadata.load(None, ckpt, model_name, total)
    gen_file = ckpt / "generation_config.json"
    if gen_file.is_file() and meta.sampling_penalty_repeat is None:  # newer gguf-py reads this too
        meta.sampling_penalty_repeat = json.loads(gen_file.read_text(encoding="utf-8")).get("repetition_penalty")
    if meta.name is None:
        meta.name = ckpt.name
    if meta.size_label is None and total > 0:
        meta.size_label = gguf.size_label(total, shared, expert, n_expert)
    w.add_type(gguf.GGUFType.MODEL)
    meta.set_gguf_meta_model(w)


def _check_not_reranker(ckpt: Path, config: dict[str, Any]) -> None:
    readme = ckpt / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace").lower() if readme.is_file() else ""
    hints = " ".join(str(x).lower() for x in (ckpt.name, config.get("_name_or_path", ""), config.get("model_type", "")))
    if "# qwen3-reranker" in text or "qwen3-reranker" in hints:
        raise UnsupportedModel("Qwen3 reranker checkpoints are not supported", hint="use --converter")


def _open_incomplete(path: Path) -> Path:
    tmp = path.with_name(path.name + INCOMPLETE)
    tmp.unlink(missing_ok=True)
    return tmp


def convert_to_gguf(
    checkpoint_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    outtype: str = "F16",
    model_name: str | None = None,
    progress: ProgressFn | None = None,
    file_index: int = 0,
    n_files: int = 1,
) -> Path:
    """Write the f16/bf16 GGUF of a checkpoint to ``out_path`` (via ``out_path.incomplete``).

    Raises:
        ModelFileNotFound: config.json, the tokenizer or a shard is missing.
        UnsupportedModel: an architecture, dtype, tokenizer or pickle checkpoint edgekv cannot convert.
    """
    import gguf

    ckpt, out = Path(checkpoint_dir), Path(out_path)
    outtype = _outtype(outtype)
    sources = _index_tensors(ckpt)  # first: a pickle-only folder is refused before anything else
    config, hf_arch = _load_config(ckpt)
    _check_not_reranker(ckpt, config)
    plan = _plan_tensors(sources, config, hf_arch, outtype)
    ftype = gguf.LlamaFileType.MOSTLY_F16 if outtype == "F16" else gguf.LlamaFileType.MOSTLY_BF16
    w = gguf.GGUFWriter(path=None, arch=SUPPORTED_ARCHITECTURES[hf_arch])
    import numpy as np

    for t in plan:
        dtype = np.float32 if t.qtype == "F32" else np.float16
        qtype = getattr(gguf.GGMLQuantizationType, t.qtype)
        w.add_tensor_info(t.name, t.shape, np.dtype(dtype), t.n_bytes, raw_dtype=qtype)
    _metadata(w, ckpt, model_name)
    _add_hparams(w, config, hf_arch, ckpt, int(ftype))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocab(w, ckpt, config, hf_arch)

    tmp = _open_incomplete(out)
    total = sum(t.n_bytes for t in plan)
    done = 0
    try:
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        assert w.fout is not None
        fout = w.fout[0]
        w.write_padding(fout, fout.tell())
        for t in plan:
            for chunk in _tensor_chunks(t):
                chunk.tofile(fout)
                done += chunk.nbytes
            w.write_padding(fout, t.n_bytes)
            if progress is not None:
                progress(ConvertProgress(out.name, "convert", done, total, file_index, n_files))
        w.flush()
        os.fsync(fout.fileno())
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return out


def _outtype(outtype: str) -> str:
    value = outtype.strip().upper()
    if value not in OUTTYPES:
        raise SpecError(f"unknown --outtype {outtype!r}", hint="use f16 or bf16")
    return value


def _reference_convert(
    converter: Path, ckpt: Path, out: Path, *, outtype: str, model_name: str | None, progress: ProgressFn | None
) -> Path:
    """Run llama.cpp's convert_hf_to_gguf.py (it puts its bundled gguf-py on sys.path itself)."""
    if not converter.is_file():
        raise ModelFileNotFound(f"{converter}: no such script", hint="point --converter at convert_hf_to_gguf.py")
    tmp = _open_incomplete(out)
    cmd = [sys.executable, str(converter), str(ckpt), "--outtype", outtype.lower(), "--outfile", str(tmp)]
    if model_name:
        cmd += ["--model-name", model_name]
    if progress is not None:
        progress(ConvertProgress(out.name, "convert", 0, 1))
    try:
        env = dict(os.environ)
        if (bundled := converter.parent / "gguf-py").is_dir():  # its own gguf-py, newer than PyPI's
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bundled), env.get("PYTHONPATH")]))
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False, env=env)
        if proc.returncode != 0 or not tmp.is_file():
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower()]
            reason = errors[-1] if errors else (lines[-1] if lines else None)
            if reason and "ModuleNotFoundError" in reason:
                hint = "pip install torch transformers"
                raise RuntimeUnavailable(f"llama.cpp's converter lacks a module: {reason}", hint=hint)
            raise LlamaError(f"llama.cpp's converter failed on {ckpt} (exit {proc.returncode})", reason=reason)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(ConvertProgress(out.name, "convert", 1, 1))
    return out


# --------------------------------------------------------------------------- quantization


def load_imatrix(path: str | os.PathLike[str]) -> Imatrix:
    """Read an importance matrix as llama.cpp's quantize tool does (common/imatrix-loader.cpp +
    tools/quantize load_imatrix): GGUF ``<tensor>.in_sum2``/``.counts`` pairs divided by the counts,
    or the legacy .dat format (sums divided by the call count).

    Raises:
        ModelFileNotFound: the file is missing.
        SpecError: the file is neither format, or lacks what llama.cpp requires.
    """
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ModelFileNotFound(f"{p}: no such imatrix file", hint="make one with llama-imatrix")
    with p.open("rb") as f:
        is_gguf = f.read(4) == b"GGUF"
    if not is_gguf:
        return _load_imatrix_legacy(p)
    import gguf

    r = gguf.GGUFReader(p)
    keys = ("imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size")
    if not all(k in r.fields for k in keys):
        raise SpecError(f"{p}: missing imatrix metadata ({', '.join(keys)})", hint="regenerate it with llama-imatrix")
    datasets = tuple(str(x) for x in r.fields["imatrix.datasets"].contents())
    chunk_count = int(r.fields["imatrix.chunk_count"].contents())
    sums: dict[str, NDArray[Any]] = {}
    counts: dict[str, NDArray[Any]] = {}
    for t in r.tensors:
        for suffix, into in ((".in_sum2", sums), (".counts", counts)):
            if t.name.endswith(suffix):
                if t.tensor_type != gguf.GGMLQuantizationType.F32:
                    raise SpecError(f"{p}: {t.name} must be F32")
                into[t.name[: -len(suffix)]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
    if not sums or set(sums) != set(counts):
        raise SpecError(f"{p}: mismatched or missing .in_sum2/.counts tensors")
    entries: dict[str, NDArray[Any]] = {}
    for name in sorted(sums):
        s, c = sums[name], np.floor(counts[name] + 0.5).astype(np.float32)  # std::lround
        per = s.reshape(len(c), -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(c[:, None] > 0, per / np.where(c > 0, c, 1)[:, None], np.float32(1.0))
        entries[name] = np.ascontiguousarray(e, dtype=np.float32).reshape(-1)
    return Imatrix(p, entries, datasets, chunk_count)


def _load_imatrix_legacy(p: Path) -> Imatrix:
    import numpy as np

    data = p.read_bytes()
    try:
        (n_entries,) = struct.unpack_from("<i", data, 0)
        pos, entries = 4, {}
        if n_entries < 1:
            raise ValueError
        for _ in range(n_entries):
            (n,) = struct.unpack_from("<i", data, pos)
            name = data[pos + 4 : pos + 4 + n].decode()
            ncall, nval = struct.unpack_from("<ii", data, pos + 4 + n)
            pos += 12 + n
            sums = np.frombuffer(data, dtype=np.float32, count=nval, offset=pos)
            pos += 4 * nval
            entries[name] = (sums / np.float32(ncall) if ncall > 0 else sums).astype(np.float32)
        chunks, datasets = 0, tuple[str, ...]()
        if pos + 4 <= len(data):
            (chunks,) = struct.unpack_from("<i", data, pos)
            if pos + 8 <= len(data):
                (n,) = struct.unpack_from("<i", data, pos + 4)
                datasets = (data[pos + 8 : pos + 8 + n].decode(errors="replace"),) if n > 0 else ()
    except (struct.error, ValueError, UnicodeDecodeError):
        raise SpecError(f"{p}: neither a GGUF nor a legacy imatrix file", hint="make one with llama-imatrix") from None
    return Imatrix(p, entries, datasets, chunks)


class _LlamaLog:
    """Routes llama.cpp's log into our logger while quantizing (the library never prints) and
    keeps the lines, so a failure can name llama.cpp's reason and progress can follow tensors."""

    active: _LlamaLog | None = None
    _callback: Any = None

    def __init__(self, on_tensor: Callable[[int, int], None] | None) -> None:
        self.lines: list[str] = []
        self.on_tensor = on_tensor
        self.error: BaseException | None = None

    def feed(self, text: str) -> None:
        self.lines.append(text)
        logger.debug("llama.cpp: %s", text.rstrip())
        m = re.match(r"\[\s*(\d+)/\s*(\d+)\]", text)
        if m and self.on_tensor is not None and self.error is None:
            try:
                self.on_tensor(int(m.group(1)), int(m.group(2)))
            except BaseException as e:  # a callback cannot raise through C; re-raised afterwards
                self.error = e

    def reason(self) -> str | None:
        text = "".join(self.lines)
        hits = [ln.strip() for ln in text.splitlines() if "error" in ln.lower() or "failed" in ln.lower()]
        return hits[-1] if hits else None


def _install_log(llama_cpp: Any) -> Callable[[], None]:
    if _LlamaLog._callback is None:

        def _cb(level: int, text: bytes, user_data: Any) -> None:
            if _LlamaLog.active is not None:
                _LlamaLog.active.feed(text.decode("utf-8", errors="replace"))

        _LlamaLog._callback = llama_cpp.llama_log_callback(_cb)
    llama_cpp.llama_log_set(_LlamaLog._callback, ctypes.c_void_p(0))

    def restore() -> None:
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))

    return restore


def _imatrix_params(llama_cpp: Any, params: Any, im: Imatrix) -> list[Any]:
    """Fill params.imatrix / kv_overrides as tools/quantize does; returns what must stay alive."""
    n = len(im.entries)
    arr = (llama_cpp.llama_model_imatrix_data * (n + 1))()
    keep: list[Any] = [arr]
    for i, (name, values) in enumerate(im.entries.items()):
        name_b = ctypes.create_string_buffer(name.encode())
        keep += [name_b, values]
        arr[i].name = ctypes.cast(name_b, ctypes.c_char_p)
        arr[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        arr[i].size = values.size
    params.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    kv: list[tuple[str, int, Any]] = [("quantize.imatrix.file", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, str(im.path))]
    if im.datasets:
        kv.append(("quantize.imatrix.dataset", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, im.datasets[0]))
    kv.append(("quantize.imatrix.entries_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, n))
    if im.chunk_count > 0:
        kv.append(("quantize.imatrix.chunks_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, im.chunk_count))
    overrides = (llama_cpp.llama_model_kv_override * (len(kv) + 1))()
    for o, (key, tag, value) in zip(overrides, kv, strict=False):
        o.key, o.tag = key.encode(), tag
        if tag == llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR:
            o.value.val_str = value.encode()[:127]
        else:
            o.value.val_i64 = value
    params.kv_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    keep.append(overrides)
    return keep


def quantize_gguf(
    src: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    quant: WeightQuant | str,
    *,
    threads: int | None = None,
    imatrix: Imatrix | str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    file_index: int = 0,
    n_files: int = 1,
) -> Path:
    """Quantize a GGUF with llama_model_quantize into ``out_path`` (via ``out_path.incomplete``).

    Raises:
        RuntimeUnavailable: llama_cpp is not installed.
        LlamaError: llama.cpp refused; the message carries the log line that says why.
    """
    try:
        import llama_cpp
    except ImportError as e:
        raise RuntimeUnavailable("quantizing needs llama-cpp-python", hint="pip install llama-cpp-python") from e
    q = quant if isinstance(quant, WeightQuant) else WeightQuant.parse(quant)
    out = Path(out_path)
    im = imatrix if isinstance(imatrix, Imatrix) or imatrix is None else load_imatrix(imatrix)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = q.ftype
    params.nthread = threads or 0
    keep = _imatrix_params(llama_cpp, params, im) if im is not None else []
    src_bytes = Path(src).stat().st_size

    def on_tensor(i: int, n: int) -> None:
        if progress is not None:
            progress(ConvertProgress(out.name, "quantize", src_bytes * i // max(n, 1), src_bytes, file_index, n_files))

    tmp = _open_incomplete(out)
    log = _LlamaLog(on_tensor)
    llama_cpp.llama_backend_init()
    restore = _install_log(llama_cpp)
    _LlamaLog.active = log
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        del keep
        if log.error is not None:
            raise log.error
        if rc != 0 or not tmp.is_file():
            raise LlamaError(f"llama_model_quantize failed to make {q.value} from {src}", reason=log.reason())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _LlamaLog.active = None
        restore()
    return out


# --------------------------------------------------------------------------- the ladder


def _file_numbers(path: Path, quant: str, *, reused: bool = False) -> OutputFile:
    """sha256, sizes, tensor-type mix and KV bytes/token of a written GGUF (for the manifest)."""
    from edgekv.gguf_io import read_spec
    from edgekv.memory import kv_bytes_per_token

    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    spec = read_spec(path)
    kv = {k.value: kv_bytes_per_token(spec, k) for k in (KvType.F16, KvType.Q8_0, KvType.Q4_0)}
    return OutputFile(
        path.name, path, quant, h.hexdigest(), path.stat().st_size, spec.weights_bytes,
        spec.tensor_type_bytes(), kv, reused,
    )  # fmt: skip


def _default_model_name(ckpt: Path) -> str:
    """The checkpoint folder's name; for a hub cache snapshot (models--org--name/snapshots/<sha>) the repo's."""
    ckpt = ckpt.resolve()
    if re.fullmatch(r"[0-9a-f]{40}", ckpt.name) and ckpt.parent.name == "snapshots":
        return ckpt.parent.parent.name.split("--")[-1]
    return ckpt.name


def _fingerprint(ckpt: Path, *, outtype: str, converter: Path | None, model_name: str) -> str:
    """Identifies the source of a conversion: config, weights and tokenizer (name, size, mtime)."""
    h = hashlib.sha256(f"{outtype}|{converter}|{model_name}".encode())
    for p in sorted(ckpt.iterdir()):
        if p.suffix in (".json", ".safetensors", ".model", ".txt", ".jinja") and p.is_file():
            st = p.stat()
            h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + INCOMPLETE)
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _estimate_bytes(
    ckpt: Path, quants: Sequence[WeightQuant], *, outtype: str, has_imatrix: bool
) -> tuple[int, dict[str, int]]:
    """(f16/bf16 file bytes, quant -> bytes) estimated from the tensor plan and llama.cpp's type rules."""
    from edgekv.archs import TensorShape
    from edgekv.quantrules import quantized_types, weights_bytes

    sources = _index_tensors(ckpt)
    config, hf_arch = _load_config(ckpt)
    plan = _plan_tensors(sources, config, hf_arch, outtype)
    tok_bytes = sum(p.stat().st_size for p in (ckpt / "tokenizer.json", ckpt / "tokenizer.model") if p.is_file())
    header = tok_bytes + HEADER_SLACK_BYTES
    base = header + sum(-(-t.n_bytes // 32) * 32 for t in plan)
    shapes = [TensorShape(t.name, tuple(reversed(t.shape)), t.qtype) for t in plan]
    arch = SUPPORTED_ARCHITECTURES[hf_arch]
    out = {}
    for q in quants:
        try:
            types = quantized_types(
                shapes, q, arch=arch, n_layer=config["num_hidden_layers"], n_head=config["num_attention_heads"],
                n_head_kv=config["num_key_value_heads"], has_imatrix=has_imatrix,
            )  # fmt: skip
        except SpecError as e:
            raise SpecError(e.message, hint="pass --imatrix FILE (from llama-imatrix) for this quant") from None
        out[q.value] = header + weights_bytes(shapes, types) + 32 * len(shapes)
    return base, out


def _check_disk(outdir: Path, need_bytes: int, reclaim_bytes: int) -> None:
    free = shutil.disk_usage(outdir).free + reclaim_bytes
    if need_bytes > free:
        from edgekv.units import format_bytes

        raise DiskFull(
            f"the GGUF files need ~{format_bytes(need_bytes)} ({need_bytes} bytes) but {outdir} has "
            f"{format_bytes(free)} ({free} bytes) free",
            hint="free some space, choose another --outdir, or ask for fewer --quants",
        )


def convert_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    *,
    quants: Sequence[WeightQuant | str] = DEFAULT_QUANTS,
    outtype: str = "f16",
    outdir: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    imatrix: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    converter: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> ConvertResult:
    """Convert a Hugging Face checkpoint to ``<name>-F16.gguf`` and quantize it to each of ``quants``.

    Writes into ``outdir`` (default ``./<name>-GGUF``) plus ``manifest.json``. A file that an earlier
    run of the same conversion finished (same source, recorded in the manifest with its sha256) is
    reused; any other existing output needs ``force``. ``converter`` runs llama.cpp's
    convert_hf_to_gguf.py for the f16/bf16 step instead of edgekv's converter.

    Raises:
        ModelFileNotFound, UnsupportedModel: see :func:`convert_to_gguf`.
        OutputExists: an output exists that this conversion did not make, and ``force`` is False.
        DiskFull: the estimated outputs do not fit the free space of ``outdir``.
        LlamaError: llama.cpp failed to quantize (the message says why).
    """
    ckpt = Path(checkpoint_dir)
    if not ckpt.is_dir():
        raise ModelFileNotFound(f"{ckpt}: no such checkpoint folder", hint="pass a folder with config.json")
    base_type = _outtype(outtype)
    ladder = list(dict.fromkeys(q if isinstance(q, WeightQuant) else WeightQuant.parse(q) for q in quants))
    if any(q.value in OUTTYPES for q in ladder):
        raise SpecError("F16/BF16 is the conversion step, not a quant", hint="use --outtype for it")
    name = re.sub(r"[^\w.+-]+", "-", model_name or _default_model_name(ckpt)).strip("-") or "model"
    out = Path(outdir) if outdir is not None else Path.cwd() / f"{name}-GGUF"
    conv = Path(converter) if converter is not None else None
    im = load_imatrix(imatrix) if imatrix is not None else None
    base_est, quant_est = _estimate_bytes(ckpt, ladder, outtype=base_type, has_imatrix=im is not None)

    fp = _fingerprint(ckpt, outtype=base_type, converter=conv, model_name=name)
    imatrix_sig = f"{im.path.name}:{im.path.stat().st_size}" if im is not None else None
    steps = [(base_type, out / f"{name}-{base_type}.gguf", base_est)]
    steps += [(q.value, out / f"{name}-{q.value}.gguf", quant_est[q.value]) for q in ladder]
    recipe = {s[0]: f"{fp}|{s[0]}|{imatrix_sig if s[0] not in OUTTYPES else ''}" for s in steps}

    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST_NAME
    old = _load_manifest(manifest_path)
    old_files = {f["name"]: f for f in old.get("files", [])} if old.get("fingerprint") == fp else {}
    if manifest_path.exists() and not force and old.get("fingerprint") != fp:
        raise OutputExists(f"{manifest_path} belongs to another conversion", hint="pass --force or another --outdir")
    reuse: dict[str, bool] = {}
    for quant, path, _ in steps:
        entry = old_files.get(path.name) or {}
        ok = not force and path.is_file() and entry.get("recipe") == recipe[quant]
        ok = ok and path.stat().st_size == entry.get("file_bytes")
        if path.exists() and not ok and not force:
            raise OutputExists(f"{path} already exists", hint="pass --force to overwrite it, or another --outdir")
        reuse[quant] = ok
    need = sum(est for quant, _, est in steps if not reuse[quant])
    partials = [path.with_name(path.name + INCOMPLETE) for _, path, _ in steps]
    stale = sum(p.stat().st_size for p in partials if p.is_file())  # rewritten, so their space counts as free
    _check_disk(out, need, stale)

    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "model_name": name,
        "arch": SUPPORTED_ARCHITECTURES[_load_config(ckpt)[1]],
        "source": str(ckpt.resolve()),
        "outtype": base_type,
        "converter": str(conv) if conv else "edgekv",
        "fingerprint": fp,
        "files": [],
    }
    written: list[OutputFile] = []
    base_path = steps[0][1]
    for i, (quant, path, _) in enumerate(steps):
        if reuse[quant]:
            f = _file_numbers(path, quant, reused=True)
            if f.sha256 != old_files[path.name]["sha256"]:
                raise OutputExists(f"{path} changed since it was written", hint="pass --force to rebuild it")
        else:
            if i == 0 and conv is not None:
                _reference_convert(conv, ckpt, path, outtype=base_type, model_name=model_name, progress=progress)
            elif i == 0:
                convert_to_gguf(ckpt, path, outtype=base_type, model_name=model_name, progress=progress,
                                file_index=0, n_files=len(steps))  # fmt: skip
            else:
                quantize_gguf(base_path, path, quant, threads=threads, imatrix=im, progress=progress,
                              file_index=i, n_files=len(steps))  # fmt: skip
            f = _file_numbers(path, quant)
        written.append(f)
        manifest["files"] = [{**x.as_dict(), "recipe": recipe[x.quant]} for x in written]
        done = {x.name for x in written}
        manifest["files"] += [v for k, v in old_files.items() if k not in done and (out / k).is_file()]
        _write_json(manifest_path, manifest)
    return ConvertResult(name, manifest["arch"], out, manifest_path, tuple(written), manifest)
