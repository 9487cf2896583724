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
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.errors import GGUFError, GGUFRuleError, ModelFileNotFound, SpecError, VocabOnlyModel
from edgekv.model.gguf_spec import from_gguf_fields
from edgekv.model.quant import ggml_type
from edgekv.model.spec import ModelSpec, TensorInfo

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32  # gguf.GGUF_DEFAULT_ALIGNMENT
# String arrays longer than this (tokenizer vocab, merges) are counted, not kept.
MAX_KEPT_STRING_ARRAY = 4096
# gguf-py writes arrays of arrays (llama.cpp's gguf.cpp rejects any nesting); deeper is corrupt.
MAX_ARRAY_DEPTH = 64
GGML_MAX_DIMS = 4  # ggml.h
MAX_STRING_BYTES = 1 << 30
SPLIT_COUNT = "split.count"  # gguf.Keys.Split.LLM_KV_SPLIT_COUNT
ALIGNMENT_KEY = "general.alignment"  # gguf.Keys.General.ALIGNMENT

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}  # fmt: skip
_STRING, _ARRAY = 8, 9
_UINT32 = 4
TYPE_NAMES = {
    0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
    8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64",
}  # fmt: skip


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
    """What a GGUF header says: version, key/values, tensor infos and where data starts.

    ``types`` holds each key's GGUF value type (9 = array); ``byte_order`` is "<" or ">".
    """

    version: int
    fields: dict[str, Any]
    tensors: list[TensorInfo]
    tensor_offsets: list[int]
    data_offset: int
    header_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    byte_order: str = "<"

    @property
    def data_bytes(self) -> int:
        """Bytes the data section must have: the end of the last tensor."""
        return max((o + t.n_bytes for o, t in zip(self.tensor_offsets, self.tensors, strict=True)), default=0)

    @property
    def expected_file_bytes(self) -> int:
        """The smallest valid file size: a file without tensors has no data section and no padding."""
        return self.data_offset + self.data_bytes if self.tensors else self.header_bytes

    @property
    def vocab_only(self) -> bool:
        """No tensors and not one shard of a split model: a tokenizer-only GGUF (llama.cpp's ggml-vocab-*)."""
        split = self.fields.get(SPLIT_COUNT)
        return not self.tensors and not (isinstance(split, int) and split > 1)


class _Cursor:
    def __init__(self, buf: bytes | mmap.mmap | memoryview, *, complete: bool, keep_all: bool) -> None:
        self.buf = buf
        self.pos = 0
        self.n = len(buf)
        self.complete = complete  # the buffer is the whole file: running out is an error, not "read more"
        self.keep_all = keep_all
        self.order = "<"

    def need(self, n: int, what: str) -> None:
        if self.pos + n <= self.n:
            return
        if self.complete:
            raise GGUFError(
                f"the file ends inside its header: {what} at offset {self.pos} needs {n} bytes, "
                f"{self.n - self.pos} remain",
                hint="the file is truncated or corrupt; fetch it again",
            )
        raise NeedMoreBytes(max(self.pos + n, self.n * 2))

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def scalar(self, vtype: int, what: str = "value") -> Any:
        code, size = _SCALARS[vtype]
        return struct.unpack(self.order + code, self.take(size, what))[0]

    def u32(self, what: str) -> int:
        return int(self.scalar(4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(10, what))

    def raw_string(self, what: str) -> bytes:
        n = self.u64(f"length of {what}")
        if n > MAX_STRING_BYTES:
            raise GGUFError(f"corrupt header: {what} of {n} bytes at offset {self.pos - 8}")
        return self.take(n, what)

    def name(self, what: str) -> str:
        """A key or tensor name: must be UTF-8 (gguf-py and llama.cpp reject it otherwise)."""
        at = self.pos
        raw = self.raw_string(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"corrupt header: {what} at offset {at} is not UTF-8 ({raw[:40]!r})") from None

    def value(self, vtype: int, key: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype, f"value of {key}")
        if vtype == _STRING:
            return self.raw_string(f"value of {key}").decode("utf-8", errors="replace")
        if vtype != _ARRAY:
            raise GGUFError(f"corrupt header: key {key} has unknown value type {vtype}")
        if depth >= MAX_ARRAY_DEPTH:
            raise GGUFRuleError(f"corrupt header: key {key} nests arrays deeper than {MAX_ARRAY_DEPTH}")
        item_type, count = self.u32(f"array type of {key}"), self.u64(f"array length of {key}")
        if count == 0:
            return []
        if item_type in _SCALARS:
            code, size = _SCALARS[item_type]
            raw = self.take(size * count, f"{count} items of {key}")
            return list(struct.unpack(f"{self.order}{count}{code}", raw))
        if item_type == _STRING and count > MAX_KEPT_STRING_ARRAY and not self.keep_all:
            for _ in range(count):
                n = self.u64(f"length of an item of {key}")
                self.need(n, f"item of {key}")
                self.pos += n
            return SkippedArray(count)
        if item_type not in (_STRING, _ARRAY):
            raise GGUFError(f"corrupt header: key {key} has arrays of unknown value type {item_type}")
        # every item takes at least 8 bytes (a string's length, an array's type and length)
        self.need(min(count, self.n) * 8 if self.complete else 0, f"{count} items of {key}")
        return [self.value(item_type, key, depth + 1) for _ in range(count)]


def parse_header(buf: bytes | mmap.mmap | memoryview, *, complete: bool = False, keep_all: bool = False) -> GGUFHeader:
    """Parse a GGUF header from the start of a file.

    ``complete``: ``buf`` is the whole file, so running out of bytes is a GGUFError. ``keep_all``
    keeps long string arrays too (tests compare every value with gguf-py).

    Raises:
        NeedMoreBytes: ``buf`` ends before the header does (read more and call again).
        GGUFError: not a GGUF file, an unsupported version, or a corrupt header.
    """
    cur = _Cursor(buf, complete=complete, keep_all=keep_all)
    if cur.take(4, "magic") != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (bad magic)", hint="give it a llama.cpp .gguf model file")
    version = cur.u32("version")
    if version & 0xFFFF == 0:  # written big-endian (gguf-py's --bigendian), as gguf-py detects it
        cur.order, version = ">", int.from_bytes(version.to_bytes(4, "little"), "big")
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}", hint="only versions 2 and 3 exist")
    n_tensors, n_kv = cur.u64("tensor count"), cur.u64("key count")
    # a key takes at least 12 bytes, a tensor info at least 24: counts past that are corrupt
    if n_tensors > 1 << 24 or n_kv > 1 << 24 or (complete and 12 * n_kv + 24 * n_tensors > cur.n - cur.pos):
        raise GGUFError(f"corrupt header: {n_tensors} tensors, {n_kv} keys in {cur.n} bytes")
    fields: dict[str, Any] = {}
    types: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.name("key")
        if key in fields:
            raise GGUFError(f"corrupt header: key {key} appears twice")
        vtype = cur.u32(f"value type of {key}")
        fields[key] = cur.value(vtype, key)
        types[key] = vtype
    tensors, offsets = _tensor_infos(cur, n_tensors)
    alignment = _alignment(fields, types)
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    return GGUFHeader(version, fields, tensors, offsets, data_offset, cur.pos, types=types, byte_order=cur.order)


def _tensor_infos(cur: _Cursor, n_tensors: int) -> tuple[list[TensorInfo], list[int]]:
    tensors: list[TensorInfo] = []
    offsets: list[int] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        name = cur.name("tensor name")
        if name in names:
            raise GGUFError(f"corrupt header: tensor {name} appears twice")
        names.add(name)
        n_dims = cur.u32(f"dimension count of tensor {name}")
        cur.need(8 * n_dims, f"shape of tensor {name}")
        shape = tuple(cur.u64(f"shape of tensor {name}") for _ in range(n_dims))
        type_id = cur.u32(f"type of tensor {name}")
        try:
            tname = ggml_type(type_id).name
        except SpecError:
            raise GGUFError(f"tensor {name} has unknown ggml type {type_id}") from None
        offsets.append(cur.u64(f"offset of tensor {name}"))
        tensors.append(_checked_tensor(TensorInfo(name, tname, shape)))
    return tensors, offsets


def _checked_tensor(t: TensorInfo) -> TensorInfo:
    """ggml's rules for a tensor's shape: 1..GGML_MAX_DIMS dimensions, each positive, whole blocks."""
    if not 1 <= len(t.shape) <= GGML_MAX_DIMS or min(t.shape) < 1:
        raise GGUFRuleError(
            f"tensor {t.name} has shape {list(t.shape)}; ggml needs 1..{GGML_MAX_DIMS} dimensions, each at least 1"
        )
    if t.n_elements >= 1 << 63:  # ggml's int64 element count (gguf.cpp checks INT64_MAX)
        raise GGUFError(f"corrupt header: tensor {t.name} has shape {list(t.shape)}")
    try:
        t.n_bytes  # noqa: B018  # raises for rows that are not whole blocks
    except SpecError as e:
        raise GGUFError(f"tensor {t.name} of type {t.type} has shape {list(t.shape)}: {e.message}") from None
    return t


def _alignment(fields: dict[str, Any], types: dict[str, int]) -> int:
    """general.alignment: a uint32 power of two (gguf-py and llama.cpp reject anything else)."""
    if ALIGNMENT_KEY not in fields:
        return DEFAULT_ALIGNMENT
    value, vtype = fields[ALIGNMENT_KEY], types[ALIGNMENT_KEY]
    if vtype != _UINT32 or value <= 0 or value & (value - 1):
        shown = f"{_short(value)} ({TYPE_NAMES.get(vtype, vtype)})"
        raise GGUFError(f"{ALIGNMENT_KEY} is {shown}; it must be a uint32 power of two")
    return int(value)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_header(path: str | os.PathLike[str], *, keep_all: bool = False) -> GGUFHeader:
    """Read and check a local GGUF file's header (the file must hold all its tensor data)."""
    p = Path(path)
    size = _regular_file_size(p)
    try:
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            header = parse_header(mm, complete=True, keep_all=keep_all)
    except GGUFError as e:
        if e.path is None:
            raise type(e)(e.message, path=str(p), hint=e.hint) from None
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


def _regular_file_size(p: Path) -> int:
    """The size of ``p``, which must be a regular, non-empty file (a FIFO would block the read)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelFileNotFound(f"{p}: no such file", hint="check the path") from None
    except OSError as e:
        raise GGUFError(f"cannot read it ({e.strerror})", path=str(p)) from None
    if stat.S_ISDIR(st.st_mode):
        raise GGUFError("is a directory, not a GGUF file", path=str(p), hint="give the .gguf file inside it")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        raise GGUFError(f"is {kind}, not a GGUF file", path=str(p), hint="give a .gguf file on disk")
    if st.st_size == 0:
        raise GGUFError("empty file", path=str(p))
    return st.st_size


def spec_from_header(
    header: GGUFHeader, *, name: str | None = None, path: str | None = None, file_bytes: int | None = None
) -> ModelSpec:
    """ModelSpec from a parsed header; a missing or impossible value becomes a GGUFError naming the file.

    Raises:
        VocabOnlyModel: the file holds a tokenizer and no weights.
        GGUFError: a key llama.cpp needs is missing, of the wrong type or out of range.
    """
    if header.vocab_only:
        raise VocabOnlyModel(
            "vocab-only GGUF (a tokenizer, no weight tensors): there is nothing to size or run",
            path=path,
            hint="give the full model file; `edgekv inspect` shows this file's metadata",
        )
    try:
        return from_gguf_fields(header.fields, header.tensors, name=name, file_bytes=file_bytes)
    except SpecError as e:
        raise GGUFError(e.message, path=path, hint=e.hint) from None


def read_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """The ModelSpec of a local GGUF file."""
    header = read_header(path)
    size = Path(path).stat().st_size
    return spec_from_header(header, name=Path(path).name, path=str(path), file_bytes=size)


@dataclass(frozen=True, slots=True)
class VocabOnly:
    """What ``edgekv inspect`` shows for a vocab-only GGUF: its metadata, no sizes."""

    name: str
    arch: str | None
    gguf_version: int
    n_keys: int
    tokenizer_model: str | None
    n_vocab: int
    file_bytes: int


def inspect_file(path: str | os.PathLike[str]) -> ModelSpec | VocabOnly:
    """A local GGUF for ``edgekv inspect``: its ModelSpec, or a VocabOnly summary for a tokenizer-only file."""
    header = read_header(path)
    p = Path(path)
    if not header.vocab_only:
        return spec_from_header(header, name=p.name, path=str(p), file_bytes=p.stat().st_size)
    f = header.fields
    arch, tok_model = f.get("general.architecture"), f.get("tokenizer.ggml.model")
    tokens = f.get("tokenizer.ggml.tokens")
    return VocabOnly(
        name=p.name,
        arch=arch if isinstance(arch, str) else None,
        gguf_version=header.version,
        n_keys=len(f),
        tokenizer_model=tok_model if isinstance(tok_model, str) else None,
        n_vocab=len(tokens) if isinstance(tokens, (list, SkippedArray)) else 0,
        file_bytes=p.stat().st_size,
    )


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
