"""Flag values several verbs share, parsed: a layer split's shares, KV cache types, a context."""

from __future__ import annotations

from edgekv.errors import BadArgument
from edgekv.model.quant import KvType
from edgekv.plan.bounds import SHARE
from edgekv.units import parse_list, parse_tokens


def parse_tensor_split(text: str) -> list[float]:
    """--tensor-split 3,2 -> [3.0, 2.0] (llama.cpp's -ts: shares, normalised by llama.cpp)."""
    try:
        split = [float(x) for x in parse_list(text)]
    except ValueError:
        raise BadArgument(f"--tensor-split {text!r} is not a list of numbers", hint="e.g. --tensor-split 3,2") from None
    if not split or any(not 0 <= x <= SHARE.hi for x in split) or sum(split) <= 0:  # nan fails both
        raise BadArgument(f"--tensor-split {text!r}: shares must be 0..1e6, not all 0", hint="e.g. --tensor-split 3,2")
    return split


def kv_pairs(text: str) -> list[tuple[KvType, KvType]]:
    """'f16,q8_0,q8_0/f16' -> [(f16, f16), (q8_0, q8_0), (q8_0, f16)] (K/V for a mixed pair)."""
    out = []
    for item in parse_list(text):
        k, _, v = item.partition("/")
        out.append((KvType.parse(k), KvType.parse(v or k)))
    return out


def kv_flags(kv: str | None, type_k: str | None, type_v: str | None) -> tuple[KvType | None, KvType | None]:
    """(K, V) as --type-k/--type-v say, else as --kv says for both; None where no flag says."""
    both = KvType.parse(kv) if kv is not None else None
    k = KvType.parse(type_k) if type_k is not None else both
    v = KvType.parse(type_v) if type_v is not None else both
    return k, v


def parse_context(text: str | int) -> tuple[int, bool]:
    """(n_ctx, auto) from --ctx: 'auto' or a positive token count (4096, 16k)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return 4096, True
    n_ctx = parse_tokens(text)
    if n_ctx < 1:
        raise BadArgument(f"--ctx {text} is not a positive token count", hint="e.g. --ctx 16k, or --ctx auto")
    return n_ctx, False
