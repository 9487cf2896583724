"""The f16/bf16 GGUF of a checkpoint: safetensors reading, tensor names/types/permutes, GGUF writing.

Part of the conversion ``edgekv.convert.checkpoint`` runs; see its docstring for how tensors stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.convert.hparams import (
    SUPPORTED_ARCHITECTURES,
    add_hparams,
    llama3_rope_factors,
    load_config,
    read_json_object,
)
from edgekv.convert.tokenizer import add_vocab
from edgekv.errors import ConfigFileError, SafetensorsFileError, SpecError, UnsupportedModel
from edgekv.fsutil import BeforeRename, atomic_output

if TYPE_CHECKING:
    import gguf
    from numpy.typing import NDArray

from edgekv.convert.safetensors import Source, index_tensors, read_rows

OUTTYPES = ("F16", "BF16")
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
class PlannedTensor:
    """One output tensor: GGUF name, source (None for generated), output type, numpy shape."""

    name: str
    source: Source | None
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


def plan_tensors(sources: list[Source], config: dict[str, Any], hf_arch: str, outtype: str) -> list[PlannedTensor]:
    """Names, types and shapes the reference converter gives each tensor (prepare_tensors)."""
    import gguf

    arch = SUPPORTED_ARCHITECTURES[hf_arch]
    tmap = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), config["num_hidden_layers"])
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    plan: list[PlannedTensor] = []
    if arch == "llama" and (factors := llama3_rope_factors(config)) is not None:
        rope_name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        plan.append(PlannedTensor(rope_name, None, "F32", tuple(factors.shape), data=factors))
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
        plan.append(PlannedTensor(name, src, qtype, src.shape, permute))
    _check_tensors(plan, config, arch)
    return plan


def expected_shapes(config: dict[str, Any], arch: str) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name -> source (HF, rows first) shape that llama.cpp's loader will demand for this config."""
    d, ff, n_layer = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or d // n_head
    out: dict[str, tuple[int, ...]] = {"output_norm.weight": (d,)}
    if config.get("vocab_size") is not None:
        out["token_embd.weight"] = (config["vocab_size"], d)
    for i in range(n_layer):
        b = f"blk.{i}."
        out |= {
            b + "attn_norm.weight": (d,), b + "ffn_norm.weight": (d,),
            b + "attn_q.weight": (n_head * hd, d), b + "attn_k.weight": (n_kv * hd, d),
            b + "attn_v.weight": (n_kv * hd, d), b + "attn_output.weight": (d, n_head * hd),
            b + "ffn_gate.weight": (ff, d), b + "ffn_up.weight": (ff, d), b + "ffn_down.weight": (d, ff),
        }  # fmt: skip
        if arch == "qwen3":
            out |= {b + "attn_q_norm.weight": (hd,), b + "attn_k_norm.weight": (hd,)}
    return out


def _check_tensors(plan: list[PlannedTensor], config: dict[str, Any], arch: str) -> None:
    """Every tensor llama.cpp needs is there with the shape the config implies (it would refuse the GGUF)."""
    have = {t.name: t for t in plan}
    sources = [t.source for t in plan if t.source is not None]
    where = str(sources[0].path.parent) if sources else "the checkpoint"
    for name, shape in expected_shapes(config, arch).items():
        t = have.get(name)
        if t is None:
            if name == "token_embd.weight":
                continue  # some checkpoints name it differently; llama.cpp reports it if it is really absent
            raise SafetensorsFileError(
                "is missing from the safetensors files (llama.cpp would refuse the GGUF)",
                path=where,
                key=name,
                hint="download the weights again",
            )
        if t.source is not None and t.shape != shape:
            raise SafetensorsFileError(
                f"does not match config.json, which implies {list(shape)} (llama.cpp would refuse the GGUF)",
                path=str(t.source.path), key=f"{t.source.name}.shape", value=list(t.shape),
                hint="check config.json against the weights",
            )  # fmt: skip
    if "output.weight" not in have and not config.get("tie_word_embeddings", False) and "token_embd.weight" not in have:
        raise SafetensorsFileError("has neither lm_head.weight nor embed_tokens.weight", path=where)


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


def _tensor_chunks(t: PlannedTensor) -> Iterator[NDArray[Any]]:
    """The output bytes of one tensor, a few tens of MB at a time."""
    if t.source is None:
        yield t.data
        return
    src = t.source
    if t.permute_heads or len(src.shape) <= 1:
        a = read_rows(src, 0, src.shape[0] if src.shape else 1)
        if t.permute_heads:
            a = _permute(a, t.permute_heads)
        yield _convert_chunk(a, src.dtype, t.qtype)
        return
    row_bytes = max(src.n_bytes // src.shape[0], 1)
    step = max(CHUNK_BYTES // row_bytes, 1)
    for start in range(0, src.shape[0], step):
        yield _convert_chunk(read_rows(src, start, min(start + step, src.shape[0])), src.dtype, t.qtype)


def _metadata(w: gguf.GGUFWriter, ckpt: Path, model_name: str | None) -> None:
    """ModelBase.prepare_metadata's general.* keys (gguf.Metadata heuristics + size label)."""
    import gguf

    total, shared, expert, n_expert = w.get_total_parameter_count()
    meta = gguf.Metadata.load(None, ckpt, model_name, total)
    gen_file = ckpt / "generation_config.json"
    if gen_file.is_file() and meta.sampling_penalty_repeat is None:  # newer gguf-py reads this too
        meta.sampling_penalty_repeat = read_json_object(gen_file, ConfigFileError).get("repetition_penalty")
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
    need_bytes: int | None = None,
    before_rename: BeforeRename | None = None,
) -> Path:
    """Write the f16/bf16 GGUF of a checkpoint to ``out_path`` (via ``out_path.incomplete``).

    ``before_rename(tmp)`` sees the finished file before it takes its name (the manifest records it
    there, so a kill at any point leaves a state the rerun completes). ``need_bytes`` (the estimate)
    goes into the DiskFull message.

    Raises:
        ModelFileNotFound: config.json, the tokenizer or a shard is missing.
        UnsupportedModel: an architecture, dtype, tokenizer or pickle checkpoint edgekv cannot convert.
        ConfigFileError, SafetensorsFileError, TokenizerFileError: a checkpoint file that is not valid.
        DiskFull: the disk filled while writing (the partial file is removed).
    """
    import gguf

    ckpt, out = Path(checkpoint_dir), Path(out_path)
    outtype = parse_outtype(outtype)
    sources = index_tensors(ckpt)  # first: a pickle-only folder is refused before anything else
    config, hf_arch = load_config(ckpt)
    _check_not_reranker(ckpt, config)
    plan = plan_tensors(sources, config, hf_arch, outtype)
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

    total = sum(t.n_bytes for t in plan)
    done = 0
    with atomic_output(out, before_rename=before_rename, need_bytes=need_bytes) as tmp:
        try:
            w.write_header_to_file(path=tmp)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            assert w.fout is not None
            fout = w.fout[0]
            w.write_padding(fout, fout.tell())
            for t in plan:
                for chunk in _tensor_chunks(t):
                    # not chunk.tofile(): its OSError on a full disk carries no errno
                    fout.write(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8).data)
                    done += chunk.nbytes
                w.write_padding(fout, t.n_bytes)
                if progress is not None:
                    progress(ConvertProgress(out.name, "convert", done, total, file_index, n_files))
            w.flush()
            os.fsync(fout.fileno())
            w.close()
        except BaseException:
            try:
                w.close()  # flushes what is buffered: on a full disk that fails again
            except OSError:
                pass
            raise
    return out


def parse_outtype(outtype: str) -> str:
    """--outtype as "F16" or "BF16" (any case); SpecError for anything else."""
    value = outtype.strip().upper()
    if value not in OUTTYPES:
        raise SpecError(f"unknown --outtype {outtype!r}", hint="use f16 or bf16")
    return value
