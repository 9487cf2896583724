"""ggml tensor types, llama.cpp file types (weight quants) and KV cache types.

Byte math is table-driven, like gguf-py's ``GGML_QUANT_SIZES``: a row of ``ne0`` elements of
type ``t`` takes ``type_size * ne0 // block_size`` bytes. The table is kept here (stdlib only)
so that ``edgekv pick`` never imports gguf/numpy; ``tests/unit/test_quant.py`` checks it
against ``gguf.GGML_QUANT_SIZES`` and ``gguf.LlamaFileType``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgekv.errors import BadArgument, parse_choice

__all__ = [
    "GGML_TYPES",
    "FILE_TYPES",
    "GgmlType",
    "KvType",
    "WeightQuant",
    "ggml_type",
    "row_bytes",
    "tensor_bytes",
]


@dataclass(frozen=True, slots=True)
class GgmlType:
    """One ggml tensor type: its enum value and (block size, bytes per block)."""

    name: str
    id: int
    block_size: int
    type_size: int

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.type_size / self.block_size


# (id, block size, type size) as in ggml.h / gguf-py constants.py.
_TYPES: dict[str, tuple[int, int, int]] = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 40),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ2_XXS": (16, 256, 66), "IQ2_XS": (17, 256, 74), "IQ3_XXS": (18, 256, 98),
    "IQ1_S": (19, 256, 50), "IQ4_NL": (20, 32, 18), "IQ3_S": (21, 256, 110),
    "IQ2_S": (22, 256, 82), "IQ4_XS": (23, 256, 136), "I8": (24, 1, 1), "I16": (25, 1, 2),
    "I32": (26, 1, 4), "I64": (27, 1, 8), "F64": (28, 1, 8), "IQ1_M": (29, 256, 56),
    "BF16": (30, 1, 2), "TQ1_0": (34, 256, 54), "TQ2_0": (35, 256, 66),
    "MXFP4": (39, 32, 17), "NVFP4": (40, 64, 36), "Q1_0": (41, 128, 18),
}  # fmt: skip
GGML_TYPES: dict[str, GgmlType] = {n: GgmlType(n, *v) for n, v in _TYPES.items()}
_BY_ID: dict[int, GgmlType] = {t.id: t for t in GGML_TYPES.values()}


def ggml_type(key: str | int) -> GgmlType:
    """Look a ggml type up by name (any case) or enum value."""
    t = _BY_ID.get(key) if isinstance(key, int) else GGML_TYPES.get(key.upper())
    if t is None:
        raise BadArgument(f"unknown ggml tensor type {key!r}")
    return t


def row_bytes(type_name: str | int, ne0: int) -> int:
    """ggml_row_size: bytes of one row of ``ne0`` elements."""
    t = ggml_type(type_name)
    if ne0 % t.block_size:
        raise BadArgument(f"row of {ne0} elements is not a multiple of {t.name}'s block size {t.block_size}")
    return t.type_size * ne0 // t.block_size


def tensor_bytes(type_name: str | int, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor; ``shape`` is ggml order (ne0 first, the row length)."""
    n_rows = 1
    for d in shape[1:]:
        n_rows *= d
    return row_bytes(type_name, shape[0]) * n_rows


class KvType(str, enum.Enum):
    """KV cache element types llama.cpp accepts for ``type_k``/``type_v`` (CLI spelling)."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    Q8_0 = "q8_0"
    Q5_1 = "q5_1"
    Q5_0 = "q5_0"
    Q4_1 = "q4_1"
    Q4_0 = "q4_0"
    IQ4_NL = "iq4_nl"

    @classmethod
    def parse(cls, text: str) -> KvType:
        return parse_choice(cls, text.strip().lower(), text=text, what="KV cache type")

    @property
    def ggml(self) -> GgmlType:
        return GGML_TYPES[self.name]

    @property
    def quantized(self) -> bool:
        return self not in (KvType.F32, KvType.F16, KvType.BF16)

    @property
    def bits(self) -> float:
        return self.ggml.bits_per_weight


# KV types the chooser considers by default (paper rule 5: 8-bit KV is the compression of
# choice, 4-bit only as a last resort). CUDA builds ship FA kernels for these same-type pairs.
DEFAULT_KV_TYPES: tuple[KvType, ...] = (KvType.F16, KvType.Q8_0, KvType.Q4_0)


class WeightQuant(str, enum.Enum):
    """llama.cpp file types (``llama_ftype``): what ``llama-quantize`` is asked for."""

    F32 = "F32"
    F16 = "F16"
    BF16 = "BF16"
    Q8_0 = "Q8_0"
    Q6_K = "Q6_K"
    Q5_K_M = "Q5_K_M"
    Q5_K_S = "Q5_K_S"
    Q5_1 = "Q5_1"
    Q5_0 = "Q5_0"
    Q4_K_M = "Q4_K_M"
    Q4_K_S = "Q4_K_S"
    Q4_1 = "Q4_1"
    Q4_0 = "Q4_0"
    MXFP4_MOE = "MXFP4_MOE"  # experts (3-D tensors) MXFP4, the rest Q8_0: gpt-oss as published
    IQ4_NL = "IQ4_NL"
    IQ4_XS = "IQ4_XS"
    Q3_K_L = "Q3_K_L"
    Q3_K_M = "Q3_K_M"
    Q3_K_S = "Q3_K_S"
    IQ3_M = "IQ3_M"
    IQ3_S = "IQ3_S"
    IQ3_XS = "IQ3_XS"
    IQ3_XXS = "IQ3_XXS"
    Q2_K = "Q2_K"
    Q2_K_S = "Q2_K_S"
    IQ2_M = "IQ2_M"
    IQ2_S = "IQ2_S"
    IQ2_XS = "IQ2_XS"
    IQ2_XXS = "IQ2_XXS"
    IQ1_M = "IQ1_M"
    IQ1_S = "IQ1_S"

    @classmethod
    def parse(cls, text: str) -> WeightQuant:
        key = text.strip().upper().replace("-", "_").replace(".", "_")
        return parse_choice(cls, key, text=text, what="weight quant")

    @property
    def ftype(self) -> int:
        """llama_ftype enum value (LLAMA_FTYPE_MOSTLY_*)."""
        return FILE_TYPES[self.value]

    @property
    def base_type(self) -> GgmlType:
        """The ggml type most tensors get (llama-quant.cpp's default_type)."""
        return GGML_TYPES[_FTYPE_BASE[self.value]]


FILE_TYPES: dict[str, int] = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
    "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16,
    "Q5_K_M": 17, "Q6_K": 18, "IQ2_XXS": 19, "IQ2_XS": 20, "Q2_K_S": 21, "IQ3_XS": 22,
    "IQ3_XXS": 23, "IQ1_S": 24, "IQ4_NL": 25, "IQ3_S": 26, "IQ3_M": 27, "IQ2_S": 28,
    "IQ2_M": 29, "IQ4_XS": 30, "IQ1_M": 31, "BF16": 32, "TQ1_0": 36, "TQ2_0": 37,
    "MXFP4_MOE": 38, "NVFP4": 39, "Q1_0": 40,
}  # fmt: skip
_FTYPE_BASE: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_1": "Q5_1", "Q5_0": "Q5_0", "Q4_K_M": "Q4_K",
    "Q4_K_S": "Q4_K", "Q4_1": "Q4_1", "Q4_0": "Q4_0", "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS",
    "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "IQ3_M": "IQ3_S", "IQ3_S": "IQ3_S",
    "IQ3_XS": "IQ3_S", "IQ3_XXS": "IQ3_XXS", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K",
    "IQ2_M": "IQ2_S", "IQ2_S": "IQ2_XS", "IQ2_XS": "IQ2_XS", "IQ2_XXS": "IQ2_XXS",
    "IQ1_M": "IQ1_M", "IQ1_S": "IQ1_S", "MXFP4_MOE": "MXFP4",
}  # fmt: skip
_FTYPE_NAMES: dict[int, str] = {v: k for k, v in FILE_TYPES.items()}


def file_type_name(ftype: int) -> str:
    """Name of a llama_ftype value (``general.file_type``), e.g. 15 -> 'Q4_K_M'."""
    return _FTYPE_NAMES.get(ftype & ~1024, f"ftype {ftype}")
