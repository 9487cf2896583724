"""Sizes and token counts: the one place edgekv's unit convention lives.

VRAM is binary: ``8G``, ``8GB`` and ``8GiB`` all mean 8 x 2**30 bytes, because card makers'
"8 GB" cards hold 8 GiB and nvidia-smi reports MiB. ``M``/``MB``/``MiB`` are 2**20 and ``K`` 2**10.
A bare integer is bytes, from 1 MiB up: below that a missing unit is far likelier than a card of
a few bytes (``--vram 8`` is refused with "write 8G"). No size may pass 1 PiB.
Token counts (``--ctx 16k``) use k = 1024, as llama.cpp users write them.
"""

from __future__ import annotations

import math
import re

from edgekv.errors import BadArgument

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
PIB = 1024**5
MAX_SIZE = PIB  # more than any machine edgekv plans for: a typo, not a card
MAX_TOKENS = 2**24  # 16M tokens: more than any model's trained context (Llama 4 Scout: 10M); a typo beyond
MAX_DURATION = 365 * 24 * 3600.0  # a year: no answer is waited for longer

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB}


def parse_size(text: str | int, *, allow_zero: bool = False) -> int:
    """Parse a memory size such as ``8G``, ``8GiB``, ``8GB``, ``7.5G`` or ``8192MiB`` into bytes.

    ``allow_zero`` accepts 0 (``0``, ``0G``, ``0MiB``): margins and overheads may be zero, a card may not.

    Raises:
        BadArgument: for anything else (negative, unit-less fractions, unknown units).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0 or (text == 0 and not allow_zero):
            raise BadArgument(f"size must be positive, got {text}")
        return _bounded(text, str(text))
    m = _SIZE_RE.match(str(text))
    if not m:
        raise BadArgument(
            f"cannot read {text!r} as a memory size",
            hint="write it like 8G, 8GiB, 7.5G or 8192M (binary units: 1G = 1024 MiB)",
        )
    number, unit = m.group(1), m.group(2).upper()
    if allow_zero and float(number) == 0:
        return 0
    if unit == "" and "." in number:
        raise BadArgument(f"cannot read {text!r} as a memory size", hint="a bare number is bytes; add a unit: 7.5G")
    value = round(float(number) * _SCALE[unit])
    if value <= 0:
        raise BadArgument(f"size must be positive, got {text!r}")
    if unit == "" and value < MIB:
        raise BadArgument(
            f"{text!r} has no unit, so it would mean {value} bytes",
            hint=f"add a unit: {number}G for GiB, {number}M for MiB",
        )
    return _bounded(value, str(text))


def _bounded(value: int, text: str) -> int:
    if value > MAX_SIZE:
        raise BadArgument(f"{text!r} is more than 1 PiB, larger than any machine", hint="write it like 8G or 24G")
    return value


def format_bytes(n_bytes: int | float, *, unit: str | None = None) -> str:
    """Human form of a byte count in binary units, e.g. ``4.19 GiB``."""
    sign = "-" if n_bytes < 0 else ""
    n = abs(float(n_bytes))
    if unit is None:
        unit = "GiB" if n >= GIB else "MiB" if n >= MIB else "KiB" if n >= KIB else "B"
    scale = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB, "TiB": TIB}[unit]
    return f"{sign}{n / scale:.2f} {unit}" if unit != "B" else f"{sign}{int(n)} B"


_TOKENS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_tokens(text: str | int) -> int:
    """Parse a token count such as ``4096``, ``4k`` or ``32K`` (k = 1024), at most MAX_TOKENS (16M)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise BadArgument(f"token count must not be negative, got {text}")
        return _tokens_bounded(text, str(text))
    m = _TOKENS_RE.match(str(text))
    if not m and _TOKENS_RE.match(str(text).strip().removeprefix("-")):
        raise BadArgument(f"token count must not be negative, got {str(text).strip()!r}", hint="e.g. 4096 or 16k")
    if not m:
        raise BadArgument(f"cannot read {text!r} as a token count", hint="write it like 4096, 4k or 32k (k = 1024)")
    scale = {"": 1, "k": 1024, "m": 1024**2}[m.group(2).lower()]
    value = float(m.group(1)) * scale
    if value != int(value):
        raise BadArgument(f"{text!r} is not a whole number of tokens")
    return _tokens_bounded(int(value), str(text).strip())


def _tokens_bounded(value: int, text: str) -> int:
    if value > MAX_TOKENS:
        raise BadArgument(
            f"{text!r} tokens is more than 16M (16384k), longer than any model's context", hint="e.g. 4096 or 16k"
        )
    return value


def parse_list(text: str) -> list[str]:
    """Split a comma-separated CLI list, dropping blanks: ``"f16, q8_0"`` -> ``["f16", "q8_0"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(min|sec|h|m|s)?", re.IGNORECASE)


def parse_duration(text: str | float) -> float:
    """Seconds from ``90``, ``90s``, ``2m``, ``1.5m``, ``1h``, ``1m30s`` (a bare number is seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        pos, seconds = 0, 0.0
        while pos < len(s):
            m = _DURATION_RE.match(s, pos)
            if not m or m.end() == pos:
                raise BadArgument(f"cannot read {text!r} as a duration", hint="write it like 90s, 2m, 1m30s or 1h")
            unit = (m.group(2) or "s").lower()
            seconds += float(m.group(1)) * {"h": 3600, "m": 60, "min": 60, "s": 1, "sec": 1}[unit]
            pos = m.end()
        if not s:
            raise BadArgument("empty duration", hint="write it like 90s, 2m, 1m30s or 1h")
    if not seconds > 0:
        raise BadArgument(f"a duration must be positive, got {text!r}")
    if not seconds <= MAX_DURATION:
        raise BadArgument(f"{text!r} is more than a year", hint="write it like 90s, 2m, 1m30s or 1h")
    return seconds


_BANDWIDTH_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([MGT])(?:B)?(?:/s)?)?", re.IGNORECASE)
MAX_BANDWIDTH = 20e12  # bytes/s: above any memory system of one machine


def parse_bandwidth(text: str | float) -> float:
    """Bytes/s from ``60``, ``60G``, ``60GB/s``, ``76.8 GB/s``, ``51200MB/s``, ``1.2TB/s``: decimal units,
    as bandwidths are listed; a bare number is GB/s."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "G"
    else:
        s = str(text).strip().replace(" ", "")
        m = _BANDWIDTH_RE.fullmatch(s)
        if not m:
            raise BadArgument(f"cannot read {text!r} as a memory bandwidth", hint="write it like 60GB/s or 76.8G")
        value, unit = float(m.group(1)), (m.group(2) or "G").upper()
    n = value * {"M": 1e6, "G": 1e9, "T": 1e12}[unit]
    if not math.isfinite(n) or n <= 0:
        raise BadArgument(f"a memory bandwidth must be positive, got {text!r}")
    if n > MAX_BANDWIDTH:
        raise BadArgument(
            f"{text!r} is more than 20 TB/s, faster than any machine's memory", hint="write it like 60GB/s"
        )
    return n
