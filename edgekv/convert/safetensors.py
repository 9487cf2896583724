"""Reading a Hugging Face checkpoint's safetensors files: headers checked (offsets inside the file,
not overlapping, dtype x shape matching the span), the index, and rows of a tensor as numpy."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.convert.hparams import (
    read_json_object,
)
from edgekv.errors import ModelFileNotFound, SafetensorsFileError, UnsupportedModel

if TYPE_CHECKING:
    from numpy.typing import NDArray


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # checkpoints edgekv never unpickles


@dataclass(frozen=True, slots=True)
class Source:
    """A tensor inside a safetensors file: where its bytes are and how to read them."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    n_bytes: int


ST_DTYPES = {"F16": ("float16", 2), "BF16": ("uint16", 2), "F32": ("float32", 4), "F64": ("float64", 8)}


def read_safetensors_header(path: Path) -> list[Source]:
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
    out = [source_entry(path, name, meta, 8 + n, size) for name, meta in header.items() if name != "__metadata__"]
    by_offset = sorted(out, key=lambda t: (t.offset, t.n_bytes))
    for prev, cur in zip(by_offset, by_offset[1:], strict=False):
        if cur.offset < prev.offset + prev.n_bytes:
            raise SafetensorsFileError(
                f"overlaps {prev.name} (its data ends at {prev.offset + prev.n_bytes - 8 - n})", path=str(path),
                key=f"{cur.name}.data_offsets", value=[cur.offset - 8 - n, cur.offset - 8 - n + cur.n_bytes],
                hint="download it again",
            )  # fmt: skip
    return sorted(out, key=lambda t: t.name)


def source_entry(path: Path, name: str, meta: Any, data_start: int, size: int) -> Source:
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
    if dtype in ST_DTYPES:
        n_elems = 1
        for d in shape:
            n_elems *= d
        want = n_elems * ST_DTYPES[dtype][1]
        if want != end - begin:
            raise bad(
                "shape", shape, f"is {want} bytes of {dtype}, but data_offsets {offsets} hold {end - begin} bytes"
            )
    return Source(name, path, dtype, tuple(shape), data_start + begin, end - begin)


def weight_files(ckpt: Path) -> list[Path]:
    """The safetensors files of a checkpoint (from the index if there is one); refuse pickles."""
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json_object(index, SafetensorsFileError).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise SafetensorsFileError(
                "is not an object of tensor -> file names",
                path=str(index),
                key="weight_map",
                value=weight_map,
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


def index_tensors(ckpt: Path) -> list[Source]:
    """Every tensor of the checkpoint, in the reference converter's order (files, then names)."""
    files = weight_files(ckpt)
    tensors = [t for f in files for t in read_safetensors_header(f)]
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
        if t.dtype not in ST_DTYPES:
            raise UnsupportedModel(
                f"tensor {t.name} is {t.dtype}; edgekv converts F16/BF16/F32 checkpoints",
                hint="dequantize the checkpoint first, or use --converter with llama.cpp's script",
            )
    return tensors


def read_rows(src: Source, start: int, stop: int) -> NDArray[Any]:
    """Rows [start, stop) of a tensor (first axis), read with a plain file read."""
    import numpy as np

    dtype, itemsize = ST_DTYPES[src.dtype]
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
