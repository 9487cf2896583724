"""Read a GGUF header (key/values and tensor infos) into a ModelSpec, without loading weights.

The parser is our own small stdlib reader rather than gguf.GGUFReader because it must also work
on the first bytes of a remote file (``hub.inspect_remote`` grows an HTTP range until
:class:`NeedMoreBytes` stops), and because it skips the big tokenizer arrays instead of
building numpy views of them. Key names follow gguf-py's ``gguf.Keys`` templates; a test checks
the ones we read against that module.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.errors import GGUFError, ModelFileNotFound, SpecError
from edgekv.model.quant import ggml_type
from edgekv.model.spec import ModelSpec, TensorInfo, from_gguf_fields

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32  # gguf.GGUF_DEFAULT_ALIGNMENT
# String arrays longer than this (tokenizer vocab, merges) are counted, not kept.
MAX_KEPT_STRING_ARRAY = 4096

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}  # fmt: skip
_STRING, _ARRAY = 8, 9


class NeedMoreBytes(Exception):
    """The buffer ends inside the header; ``need`` is a byte count that would get further."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


@dataclass(frozen=True, slots=True)
class SkippedArray:
    """A long string array (e.g. tokenizer.ggml.tokens) that was counted, not read."""

    count: int

    def __len__(self) -> int:
        return self.count


@dataclass(slots=True)
class GGUFHeader:
    """What a GGUF header says: version, key/values, tensor infos and where data starts."""

    version: int
    fields: dict[str, Any]
    tensors: list[TensorInfo]
    tensor_offsets: list[int]
    data_offset: int
    header_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        """Bytes the data section must have: the end of the last tensor."""
        return max((o + t.n_bytes for o, t in zip(self.tensor_offsets, self.tensors, strict=True)), default=0)

    @property
    def expected_file_bytes(self) -> int:
        return self.data_offset + self.data_bytes


class _Cursor:
    def __init__(self, buf: bytes | mmap.mmap | memoryview) -> None:
        self.buf = buf
        self.pos = 0
        self.n = len(buf)

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > self.n:
            raise NeedMoreBytes(max(end, self.n * 2))
        out = self.buf[self.pos : end]
        self.pos = end
        return bytes(out)

    def skip(self, n: int) -> None:
        if self.pos + n > self.n:
            raise NeedMoreBytes(max(self.pos + n, self.n * 2))
        self.pos += n

    def scalar(self, vtype: int) -> Any:
        fmt, size = _SCALARS[vtype]
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def string(self) -> str:
        n = self.u64()
        if n > 1 << 30:
            raise GGUFError(f"corrupt header: string of {n} bytes at offset {self.pos - 8}")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype)
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.u32(), self.u64()
            if count > 1 << 31:
                raise GGUFError(f"corrupt header: array of {count} items")
            if item_type in _SCALARS:
                fmt, size = _SCALARS[item_type]
                raw = self.take(size * count)
                return list(struct.unpack(f"<{count}{fmt[1]}", raw)) if count else []
            if item_type == _STRING and count > MAX_KEPT_STRING_ARRAY:
                for _ in range(count):
                    self.skip(self.u64())
                return SkippedArray(count)
            return [self.value(item_type) for _ in range(count)]
        raise GGUFError(f"corrupt header: unknown value type {vtype}")


def parse_header(buf: bytes | mmap.mmap | memoryview) -> GGUFHeader:
    """Parse a GGUF header from the start of a file.

    Raises:
        NeedMoreBytes: ``buf`` ends before the header does (read more and call again).
        GGUFError: not a GGUF file, an unsupported version, or a corrupt header.
    """
    cur = _Cursor(buf)
    magic = cur.take(4)
    if magic != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (bad magic)", hint="give it a llama.cpp .gguf model file")
    version = cur.u32()
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}", hint="only versions 2 and 3 exist")
    n_tensors, n_kv = cur.u64(), cur.u64()
    if n_tensors > 1 << 24 or n_kv > 1 << 24:
        raise GGUFError(f"corrupt header: {n_tensors} tensors, {n_kv} keys")
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        fields[key] = cur.value(cur.u32())
    tensors: list[TensorInfo] = []
    offsets: list[int] = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        if n_dims > 8:
            raise GGUFError(f"corrupt header: tensor {name} has {n_dims} dimensions")
        shape = tuple(cur.u64() for _ in range(n_dims))
        type_id = cur.u32()
        try:
            tname = ggml_type(type_id).name
        except SpecError:
            raise GGUFError(f"tensor {name} has unknown ggml type {type_id}") from None
        offsets.append(cur.u64())
        tensors.append(TensorInfo(name, tname, shape))
    alignment = int(fields.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"corrupt header: alignment {alignment}")
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    return GGUFHeader(version, fields, tensors, offsets, data_offset, cur.pos)


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read and check a local GGUF file's header (the file must hold all its tensor data)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileNotFound(f"{p}: no such file", hint="check the path")
    size = p.stat().st_size
    if size == 0:
        raise GGUFError("empty file", path=str(p))
    try:
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                header = parse_header(mm)
            except NeedMoreBytes:
                raise GGUFError(
                    f"truncated: the file ends inside its header ({size} bytes)",
                    path=str(p),
                    hint="the download or copy was cut short; fetch the file again",
                ) from None
    except GGUFError as e:
        if e.path is None:
            raise GGUFError(e.message, path=str(p), hint=e.hint) from None
        raise
    except (struct.error, UnicodeDecodeError, ValueError, OverflowError) as e:
        raise GGUFError(f"corrupt header ({e})", path=str(p)) from None
    if header.expected_file_bytes > size:
        raise GGUFError(
            f"truncated: tensor data needs {header.expected_file_bytes} bytes but the file has {size}",
            path=str(p),
            hint="the download or copy was cut short; fetch the file again",
        )
    return header


def spec_from_header(header: GGUFHeader, *, name: str | None = None, path: str | None = None) -> ModelSpec:
    """ModelSpec from a parsed header; a missing key becomes a GGUFError naming the file."""
    try:
        return from_gguf_fields(header.fields, header.tensors, name=name)
    except SpecError as e:
        raise GGUFError(e.message, path=path, hint=e.hint) from None


def read_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """The ModelSpec of a local GGUF file."""
    header = read_header(path)
    return spec_from_header(header, name=Path(path).name, path=str(path))


ReadRange = Callable[[int, int], bytes]


def parse_header_growing(read_range: ReadRange, *, first_bytes: int = 1 << 20) -> GGUFHeader:
    """Parse a header from a file read in growing prefixes: ``read_range(start, end)`` returns
    bytes ``[start, end)`` (fewer at end of file). Used for remote files."""
    buf = bytearray()
    want = first_bytes
    while True:
        if want > len(buf):
            chunk = read_range(len(buf), want)
            buf.extend(chunk)
            at_eof = len(buf) < want
        else:
            at_eof = False
        try:
            header = parse_header(memoryview(buf))
            header.extra["bytes_read"] = len(buf)
            return header
        except NeedMoreBytes as e:
            if at_eof:
                raise GGUFError(f"truncated: the file ends inside its header ({len(buf)} bytes)") from None
            want = max(e.need, len(buf) * 2)
