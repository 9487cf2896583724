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

from edgekv.convert.hparams import (
    SUPPORTED_ARCHITECTURES,
    add_hparams,
    llama3_rope_factors,
    load_config,
    read_json_object,
)
from edgekv.convert.tokenizer import add_vocab
from edgekv.errors import ConfigFileError, ModelFileNotFound, SafetensorsFileError, SpecError, UnsupportedModel
from edgekv.fsutil import BeforeRename, disk_full, incomplete_path, is_disk_full

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
    """Parse one safetensors header (u64 length + JSON); tensors sorted by name like safe_open.

    Raises:
        ModelFileNotFound: the file is shorter than its header says (a truncated download).
        SafetensorsFileError: the header is not a JSON object of tensors whose dtype x shape matches
            their data offsets, inside the file and not overlapping.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if n < 2 or n > 100 << 20 or 8 + n > size:
            raise ModelFileNotFound(f"{path}: not a complete safetensors file", hint="download it again")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            raise SafetensorsFileError("header is not JSON", path=str(path), hint="download it again") from None
    if not isinstance(header, dict):
        kind = type(header).__name__
        raise SafetensorsFileError(f"header is a JSON {kind}, not an object", path=str(path), hint="download it again")
    out = [_source(path, name, meta, 8 + n, size) for name, meta in header.items() if name != "__metadata__"]
    by_offset = sorted(out, key=lambda t: (t.offset, t.n_bytes))
    for prev, cur in zip(by_offset, by_offset[1:], strict=False):
        if cur.offset < prev.offset + prev.n_bytes:
            raise SafetensorsFileError(
                f"overlaps {prev.name} (its data ends at {prev.offset + prev.n_bytes - 8 - n})", path=str(path),
                key=f"{cur.name}.data_offsets", value=[cur.offset - 8 - n, cur.offset - 8 - n + cur.n_bytes],
                hint="download it again",
            )  # fmt: skip
    return sorted(out, key=lambda t: t.name)


def _source(path: Path, name: str, meta: Any, data_start: int, size: int) -> _Source:
    """One header entry, checked: dtype a string, shape non-negative ints, offsets in order, inside the
    file and exactly dtype x shape bytes apart (a known dtype; others are refused later by name)."""

    def bad(key: str, value: Any, what: str) -> SafetensorsFileError:
        return SafetensorsFileError(what, path=str(path), key=f"{name}.{key}", value=value, hint="download it again")

    if not isinstance(meta, dict):
        raise SafetensorsFileError("is not an object", path=str(path), key=name, value=meta, hint="download it again")
    dtype, shape, offsets = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad("dtype", dtype, "is not a dtype name")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise bad("shape", shape, "is not a list of integers")
    if any(d < 0 for d in shape):
        raise bad("shape", shape, "has a negative dimension")
    if not (isinstance(offsets, list) and len(offsets) == 2) or not all(
        isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets
    ):
        raise bad("data_offsets", offsets, "is not a [begin, end] pair of byte offsets")
    begin, end = offsets
    if begin > end:
        raise bad("data_offsets", offsets, "is reversed (begin after end)")
    if data_start + end > size:
        raise ModelFileNotFound(f"{path}: truncated (tensor {name} ends past the file)", hint="download it again")
    if dtype in _ST_DTYPES:
        n_elems = 1
        for d in shape:
            n_elems *= d
        want = n_elems * _ST_DTYPES[dtype][1]
        if want != end - begin:
            raise bad(
                "shape", shape, f"is {want} bytes of {dtype}, but data_offsets {offsets} hold {end - begin} bytes"
            )
    return _Source(name, path, dtype, tuple(shape), data_start + begin, end - begin)


def _weight_files(ckpt: Path) -> list[Path]:
    """The safetensors files of a checkpoint (from the index if there is one); refuse pickles."""
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json_object(index, SafetensorsFileError).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise SafetensorsFileError(
                "is not an object of tensor -> file names", path=str(index), key="weight_map", value=weight_map,
                hint="download the index again",
            )
        if bad_names := [v for v in weight_map.values() if Path(v).name != v or not v.endswith(".safetensors")]:
            raise SafetensorsFileError(
                "names a file outside the checkpoint folder or not a .safetensors file", path=str(index),
                key="weight_map", value=bad_names[0], hint="download the index again",
            )  # fmt: skip
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
        weight_map: dict[str, str] = read_json_object(index, SafetensorsFileError)["weight_map"]
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


def _check_tensors(plan: list[_Planned], config: dict[str, Any], arch: str) -> None:
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
                "is missing from the safetensors files (llama.cpp would refuse the GGUF)", path=where, key=name,
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
                # not chunk.tofile(): its OSError on a full disk carries no errno
                fout.write(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8).data)
                done += chunk.nbytes
            w.write_padding(fout, t.n_bytes)
            if progress is not None:
                progress(ConvertProgress(out.name, "convert", done, total, file_index, n_files))
        w.flush()
        os.fsync(fout.fileno())
        w.close()
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, out)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.is_file() else None
        try:
            w.close()  # flushes what is buffered: on a full disk that fails again
        except OSError:
            pass
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full(out, need_bytes=need_bytes, written_bytes=written, cause=str(e)) from e
        raise
    return out


def _outtype(outtype: str) -> str:
    value = outtype.strip().upper()
    if value not in OUTTYPES:
        raise SpecError(f"unknown --outtype {outtype!r}", hint="use f16 or bf16")
    return value
