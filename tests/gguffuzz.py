"""Seeded structural fuzzing of GGUF headers, for tests/model/test_gguf_fuzz.py and bench/gguf_fuzz.py.

Two tiny base files (a 2-layer llama with tensors of four types, and a vocab-only qwen2 file) are
encoded here field by field, so every structural field's byte span is known. A case picks a
mutation class, mutates the document (semantic values, nesting, key order, byte order) or
overwrites one span of the encoded bytes (counts, lengths, types, shapes, offsets), and runs the
path ``edgekv inspect`` takes. Outcomes: "ok", "error:<EdgekvError class>", or "traceback:<type>".
"""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.errors import EdgekvError

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_CODES = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}
# ggml type id -> (block size, type size) for the types the base file uses
_TYPES = {0: (1, 4), 1: (1, 2), 8: (32, 34)}

CLASSES = [
    "magic", "version", "counts", "key", "value_type", "string", "array", "nesting",
    "tensor_info", "alignment", "truncate", "bytes", "model_values", "valid",
]  # fmt: skip


@dataclass
class Doc:
    """A GGUF file as values: (key, type, value) triples; arrays are (item_type, [values])."""

    kvs: list[tuple[bytes, int, Any]]
    tensors: list[tuple[bytes, list[int], int]]  # name, shape (ggml order), ggml type id
    version: int = 3
    order: str = "<"
    alignment: int = 32


@dataclass
class Encoded:
    data: bytearray
    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def span(self, kind: str, offset: int, size: int) -> None:
        self.spans.setdefault(kind, []).append((offset, size))


def _tensor_bytes(shape: list[int], type_id: int) -> int:
    block, size = _TYPES[type_id]
    n = 1
    for d in shape:
        n *= d
    return n // block * size


def encode(doc: Doc) -> Encoded:
    """The bytes of ``doc`` and where each structural field lies."""
    o = doc.order
    enc = Encoded(bytearray())
    out = enc.data

    def put(kind: str, fmt: str, value: Any) -> None:
        enc.span(kind, len(out), struct.calcsize(o + fmt))
        out.extend(struct.pack(o + fmt, value))

    def put_str(kind: str, raw: bytes) -> None:
        put(kind + "_len", "Q", len(raw))
        enc.span(kind + "_bytes", len(out), len(raw))
        out.extend(raw)

    def put_value(vtype: int, value: Any) -> None:
        if vtype == STR:
            put_str("string", value)
        elif vtype == ARR:
            item_type, items = value
            put("array_type", "I", item_type)
            put("array_len", "Q", len(items))
            for item in items:
                put_value(item_type, item)
        else:
            put("scalar", _CODES[vtype], value)

    enc.span("magic", 0, 4)
    out.extend(b"GGUF")
    put("version", "I", doc.version)
    put("n_tensors", "Q", len(doc.tensors))
    put("n_kv", "Q", len(doc.kvs))
    for key, vtype, value in doc.kvs:
        put_str("key", key)
        put("value_type", "I", vtype)
        put_value(vtype, value)
    offset = 0
    for name, shape, type_id in doc.tensors:
        put_str("tensor_name", name)
        put("n_dims", "I", len(shape))
        for d in shape:
            put("dim", "Q", d)
        put("tensor_type", "I", type_id)
        put("tensor_offset", "Q", offset % (1 << 64))
        offset += -(-_tensor_bytes(shape, type_id) // doc.alignment) * doc.alignment
    if doc.tensors:
        out.extend(b"\0" * (-len(out) % doc.alignment))
        out.extend(b"\0" * min(offset, 1 << 20))  # a hostile shape's data is left out
    return enc


def _model_kvs(arch: str, **values: Any) -> list[tuple[bytes, int, Any]]:
    return [(f"{arch}.{k}".encode(), vt, v) for k, (vt, v) in values.items()]


def base_docs() -> dict[str, Doc]:
    """The two base files: "model" (2 layers, 4 tensors of F32/F16/Q8_0) and "vocab" (no tensors)."""
    tokens = (STR, [f"t{i}".encode() for i in range(32)])
    model = Doc(
        kvs=[
            (b"general.architecture", STR, b"llama"), (b"general.name", STR, b"fuzz-llama"),
            (b"general.file_type", U32, 0),
            *_model_kvs(
                "llama", block_count=(U32, 2), embedding_length=(U32, 32), feed_forward_length=(U32, 64),
                context_length=(U32, 512), vocab_size=(U32, 32), **{
                    "attention.head_count": (U32, 4), "attention.head_count_kv": (ARR, (I32, [2, 2])),
                    "attention.key_length": (U32, 16), "attention.value_length": (U32, 16),
                    "attention.layer_norm_rms_epsilon": (F32, 1e-5),
                },
            ),
            (b"test.u8", U8, 7), (b"test.i8", I8, -7), (b"test.u16", U16, 700), (b"test.i16", I16, -700),
            (b"test.i64", I64, -(2**40)), (b"test.u64", U64, 2**40), (b"test.f64", F64, 0.25),
            (b"test.bool", BOOL, True), (b"test.nested", ARR, (ARR, [(U32, [1, 2]), (U32, [3])])),
            (b"tokenizer.ggml.model", STR, b"llama"), (b"tokenizer.ggml.tokens", ARR, tokens),
            (b"tokenizer.ggml.scores", ARR, (F32, [float(-i) for i in range(32)])),
        ],
        tensors=[
            (b"token_embd.weight", [32, 32], 0), (b"blk.0.attn_q.weight", [32, 32], 1),
            (b"blk.1.attn_q.weight", [32, 32], 8), (b"output_norm.weight", [32], 0),
        ],
    )  # fmt: skip
    vocab = Doc(
        kvs=[
            (b"general.architecture", STR, b"qwen2"), (b"general.name", STR, b"fuzz-vocab"),
            *_model_kvs("qwen2", block_count=(U32, 24), embedding_length=(U32, 896)),
            (b"tokenizer.ggml.model", STR, b"gpt2"), (b"tokenizer.ggml.tokens", ARR, tokens),
            (b"tokenizer.ggml.merges", ARR, (STR, [b"t t", b"a b"])),
            (b"tokenizer.ggml.token_type", ARR, (I32, [1] * 32)),
        ],
        tensors=[],
        version=2,
    )  # fmt: skip
    return {"model": model, "vocab": vocab}


def _u(rng: random.Random, size: int, near: int = 0) -> int:
    top = (1 << (8 * size)) - 1
    picks = [0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 255, near - 1, near + 1, near * 2, 1 << 24, 1 << 31, top >> 1, top]
    picks += [rng.getrandbits(8 * size), 1 << 30]
    return max(0, min(top, rng.choice(picks)))


def _hostile(rng: random.Random) -> tuple[int, Any]:
    """A value no model key should hold: wrong sign, zero, huge, NaN/inf, a string, an array."""
    return rng.choice([
        (I32, -1), (I32, 0), (U32, 0), (I64, -(2**40)), (U32, 2**32 - 1), (U64, 4_000_000_000), (U64, 2**63),
        (U64, 2**64 - 1), (F32, float("nan")), (F32, float("inf")), (F64, 1.5), (F32, 32.0), (STR, b"32"),
        (BOOL, True), (ARR, (U32, [])), (ARR, (U32, [4])), (ARR, (STR, [b"x"])), (ARR, (I32, [-1, 2])),
        (ARR, (F32, [1.0, 2.0])), (U32, rng.getrandbits(32)), (I32, -rng.getrandbits(31)),
    ])  # fmt: skip


_MODEL_KEYS = [
    b"block_count", b"embedding_length", b"feed_forward_length", b"context_length", b"vocab_size",
    b"attention.head_count", b"attention.head_count_kv", b"attention.key_length", b"attention.value_length",
    b"attention.sliding_window", b"attention.sliding_window_pattern",
]  # fmt: skip


def _nested(depth: int, leaf: tuple[int, Any]) -> tuple[int, Any]:
    vt, v = leaf
    for _ in range(depth):
        vt, v = ARR, (vt, [v])
    return vt, v


def _overwrite(enc: Encoded, rng: random.Random, kinds: list[str]) -> bytes:
    kinds = [k for k in kinds if k in enc.spans]
    if not kinds:
        return bytes(enc.data)
    off, size = rng.choice(enc.spans[rng.choice(kinds)])
    buf = bytearray(enc.data)
    if size in (1, 2, 4, 8):
        old = int.from_bytes(buf[off : off + size], "little")
        buf[off : off + size] = _u(rng, size, old).to_bytes(size, "little")
    elif size:
        buf[off + rng.randrange(size)] = rng.choice([0x80, 0xFF, 0xC0, 0x00])  # not UTF-8 / NUL
    return bytes(buf)


def mutate(cls: str, base: Doc, rng: random.Random) -> bytes:
    """One mutated file of class ``cls`` from ``base``."""
    doc = Doc(list(base.kvs), list(base.tensors), base.version, base.order, base.alignment)
    arch = doc.kvs[0][2].decode()
    if cls == "magic":
        buf = bytearray(encode(doc).data)
        buf[0:4] = rng.choice([b"GGUG", b"FUGG", b"\0\0\0\0", b"GGML", rng.randbytes(4)])
        return bytes(buf)
    if cls == "version":
        buf = bytearray(encode(doc).data)
        buf[4:8] = rng.choice([0, 1, 4, 0x03000000, 0x02000000, 2**32 - 1, rng.getrandbits(32)]).to_bytes(4, "little")
        return bytes(buf)
    if cls == "nesting":
        depth = rng.choice([1, 2, 3, 8, 32, 63, 64, 65, 100, 500, 900])
        leaf = rng.choice([(U32, 1), (STR, b"x"), (ARR, (U8, [])), (F64, 0.5)])
        doc.kvs.insert(rng.randrange(len(doc.kvs) + 1), (b"test.deep", *_nested(depth, leaf)))
        return bytes(encode(doc).data)
    if cls == "alignment":
        vt, v = rng.choice([(U32, 0), (U32, 3), (U32, 48), (U32, 64), (U32, 1), (U32, 2**31), (U64, 32),
                            (I32, 32), (STR, b"32"), (ARR, (U32, [32])), (F32, 32.0), (U32, 2**32 - 1)])  # fmt: skip
        doc.kvs.insert(rng.randrange(len(doc.kvs) + 1), (b"general.alignment", vt, v))
        if vt == U32 and v and not v & (v - 1) and v < 4096:
            doc.alignment = v
        return bytes(encode(doc).data)
    if cls == "model_values":
        key = f"{arch}.".encode() + rng.choice(_MODEL_KEYS)
        if rng.random() < 0.1:
            key = rng.choice([b"general.architecture", b"general.file_type", b"general.name"])
        doc.kvs = [kv for kv in doc.kvs if kv[0] != key]
        doc.kvs.insert(rng.randrange(len(doc.kvs) + 1), (key, *_hostile(rng)))
        return bytes(encode(doc).data)
    if cls == "valid":
        return bytes(encode(_valid_variant(doc, rng)).data)
    if cls == "truncate":
        data = encode(doc).data
        return bytes(data[: rng.randrange(len(data))])
    if cls == "bytes":
        buf = bytearray(encode(doc).data)
        end = len(buf) if not doc.tensors else max(s[0] + s[1] for v in encode(doc).spans.values() for s in v)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(end)] = rng.getrandbits(8)
        return bytes(buf)
    if cls == "key" and rng.random() < 0.3:
        k = rng.randrange(len(doc.kvs))
        doc.kvs.insert(rng.randrange(len(doc.kvs)), (doc.kvs[k][0], U8, 1))  # a duplicate key
        return bytes(encode(doc).data)
    if cls == "tensor_info" and doc.tensors and rng.random() < 0.3:
        i = rng.randrange(len(doc.tensors))
        name, shape, t = doc.tensors[i]
        shape = rng.choice([[], [0], [32, 0], [32, 1, 1, 1, 1], [2**63, 2], [33, 32], [32] * 8, [2**32, 2**32]])
        doc.tensors[i] = (rng.choice([name, doc.tensors[0][0], b"\xff\xfe"]), shape, t)
        enc = encode(doc)
        return bytes(enc.data)
    kinds = {
        "counts": ["n_tensors", "n_kv"], "key": ["key_len", "key_bytes"], "value_type": ["value_type"],
        "string": ["string_len", "string_bytes"], "array": ["array_type", "array_len"],
        "tensor_info": ["tensor_name_len", "tensor_name_bytes", "n_dims", "dim", "tensor_type", "tensor_offset"],
    }[cls]  # fmt: skip
    return _overwrite(encode(doc), rng, kinds)


def _valid_variant(doc: Doc, rng: random.Random) -> Doc:
    """A file every reader must accept: keys reordered, big-endian, extra keys, no tensors, v2."""
    head, rest = doc.kvs[:1], doc.kvs[1:]
    rng.shuffle(rest)
    doc.kvs = head + rest if rng.random() < 0.5 else rest[:3] + head + rest[3:]
    if rng.random() < 0.3:
        doc.order = ">"
    if rng.random() < 0.3:
        doc.version = 2
    if rng.random() < 0.5:
        doc.kvs.append((b"test.extra", *rng.choice([
            (F64, float("nan")), (STR, "é\u2581".encode()), (ARR, (BOOL, [True, False])), (ARR, (STR, [])),
            (ARR, (I64, [-1, 2**62])), (ARR, (ARR, [(STR, [b"a"]), (STR, [])])), (I8, -128), (F32, float("-inf")),
        ])))  # fmt: skip
    if rng.random() < 0.3:
        doc.alignment = rng.choice([1, 8, 64, 256])
        doc.kvs.append((b"general.alignment", U32, doc.alignment))
    return doc


@dataclass(frozen=True, slots=True)
class Case:
    index: int
    cls: str
    base: str
    outcome: str  # "ok" | "error:<class>" | "traceback:<type>"
    seconds: float
    peak_bytes: int
    detail: str = ""


def inspect_path(path: Path) -> str:
    """What ``edgekv inspect FILE --vram 8G`` computes (no printing): "ok" or raises."""
    from edgekv.model.gguf_reader import VocabOnly, inspect_file
    from edgekv.report import model as rmodel
    from edgekv.units import GIB, MIB

    found = inspect_file(path)
    if isinstance(found, VocabOnly):
        rmodel.vocab_only_dict(found)
    else:
        rmodel.inspect_data(found, 8 * GIB, margin_bytes=256 * MIB, overhead_bytes=None)
    return "ok"


def case_file(index: int, seed: int) -> tuple[str, str, bytes]:
    """(class, base, bytes) of case ``index``: classes in turn, bases alternating, values seeded."""
    rng = random.Random(f"{seed}:{index}")
    cls = CLASSES[index % len(CLASSES)]
    base = ("model", "vocab")[(index // len(CLASSES)) % 2]
    return cls, base, mutate(cls, BASES[base], rng)


BASES = base_docs()


def run_cases(n: int, tmp: Path, *, seed: int = 0, check: Callable[[Path, str, str], None] | None = None) -> list[Case]:
    """Run ``n`` cases through :func:`inspect_path`, each timed and its memory peak traced."""
    out: list[Case] = []
    path = tmp / "case.gguf"
    path.write_bytes(bytes(encode(BASES["model"]).data))
    inspect_path(path)  # imports (rich, plan) once, outside the timed cases
    tracemalloc.start()
    try:
        for i in range(n):
            cls, base, data = case_file(i, seed)
            path.write_bytes(data)
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            detail = ""
            try:
                outcome = inspect_path(path)
            except EdgekvError as e:
                outcome, detail = f"error:{type(e).__name__}", str(e)
            except BaseException as e:  # noqa: BLE001  # the fuzz counts what escaped
                if isinstance(e, KeyboardInterrupt):
                    raise
                outcome, detail = f"traceback:{type(e).__name__}", repr(e)[:200]
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            if check is not None:
                check(path, cls, outcome)
            out.append(Case(i, cls, base, outcome, seconds, peak, detail))
    finally:
        tracemalloc.stop()
    return out
