"""The f16/bf16 GGUF of a checkpoint: safetensors reading, tensor names/types/permutes, GGUF writing.

Part of ``edgekv.convert.checkpoint`` (which re-exports the public names); see its docstring for how tensors stream.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.convert.hparams import SUPPORTED_ARCHITECTURES, add_hparams, llama3_rope_factors, load_config
from edgekv.convert.tokenizer import add_vocab
from edgekv.errors import ModelFileNotFound, SpecError, UnsupportedModel
from edgekv.fsutil import incomplete_path

if TYPE_CHECKING:
    import gguf
    from numpy.typing import NDArray

OUTTYPES = ("F16", "BF16")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CHUNK_BYTES = 32 << 20  # source bytes converted at a time


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
    if arch == "llama" and (factors := llama3_rope_factors(config)) is not None:
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
    config, hf_arch = load_config(ckpt)
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
    add_hparams(w, config, hf_arch, ckpt, int(ftype))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w, ckpt, config, hf_arch)

    tmp = incomplete_path(out)
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
