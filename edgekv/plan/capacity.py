"""Capacity for the rule: a model's Qwen3-equivalent size, read from published reasoning scores.

The rule ranks by capacity below E1 (``policy``). For a dense Qwen3 model that is its size; for a
mixture-of-experts model (or another family) the total size overstates or understates it. So a model
that publishes reasoning scores is placed on the **reference curve** of the Qwen3 dense models'
thinking-mode scores against their parameter counts, and the parameter count read back there is its
capacity: "the dense Qwen3 size that scores the same".

Method (each choice is a setting or written here):

* Reference points: the catalog's dense ``qwen3`` models with scores (``REFERENCE_FAMILY``), each at
  its exact parameter count (``n_params`` of its catalog entry). Source: Qwen3 Technical Report,
  arXiv:2505.09388, thinking-mode tables 13 (32B), 15 (14B), 17 (4B, 8B) and 19 (0.6B, 1.7B).
* A benchmark takes part only if its reference values rise strictly with size; a saturated one does
  not (MATH-500: 97.4 at 8B, 96.8 at 14B, 97.2 at 32B), so in practice AIME'24 and AIME'25.
* Each benchmark's reading is the size where the model's score meets the curve, the curve being
  piecewise linear in log(parameters) between the reference points. A score below the smallest or
  above the largest reference is clamped to that end (no extrapolation) and the reading says so.
* The capacity is the geometric mean of the readings (one per benchmark the model and the curve
  share); a model with no such score has no capacity here and the rule uses its own size.
* The capacity scales the model's bytes (``ModelOption.capacity_ratio`` = capacity / parameters):
  E at that quant times the ratio, so a 4-bit file still counts less than its 8-bit sibling.

Limits: scores are the publishers' own (one protocol within a family; across families, as for
gpt-oss-20b against Qwen3, the protocols differ); one model's scores do not tell how a quantized
file of it scores; the curve has six points and is read between them only.

Pure module: stdlib only. ``Score.parse`` validates the ``"scores"`` field of a catalog entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekv.errors import SpecError

__all__ = [
    "CAPACITY_MODES", "REFERENCE_FAMILY", "REFERENCE_MODE", "Capacity", "Reading", "Reference", "Score",
    "curve", "equivalent_params", "parse_scores",
]  # fmt: skip

REFERENCE_FAMILY = "qwen3"  # the family whose dense models make the curve
REFERENCE_MODE = "thinking"  # the reference points' mode (Qwen3's thinking mode)
CAPACITY_MODES = ("published", "size")  # pick --capacity: read from scores, or the model's own size (E alone)


@dataclass(frozen=True, slots=True)
class Score:
    """One published score: ``benchmark`` (e.g. "AIME24"), the ``mode`` it was run in ("thinking",
    "reasoning effort medium"), its ``value`` in percent and its ``source`` (paper and table)."""

    benchmark: str
    mode: str
    value: float
    source: str

    @classmethod
    def parse(cls, raw: Any, where: str) -> Score:
        """One entry of a ``"scores"`` list, checked: a non-empty benchmark, mode and source, a value in [0, 100]."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: a score must be an object, not {raw!r}")
        extra = set(raw) - {"benchmark", "mode", "value", "source"}
        if extra:
            raise SpecError(f"{where}: unknown score field(s) {', '.join(sorted(extra))}")
        texts = {}
        for key in ("benchmark", "mode", "source"):
            v = raw.get(key)
            if not isinstance(v, str) or not v.strip():
                raise SpecError(f"{where}: a score needs a non-empty {key!r} (got {v!r})")
            texts[key] = v.strip()
        value = raw.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise SpecError(f"{where}: score value must be a number from 0 to 100 (percent), not {value!r}")
        return cls(texts["benchmark"], texts["mode"], float(value), texts["source"])


def parse_scores(raw: Any, where: str) -> tuple[Score, ...]:
    """A catalog entry's ``"scores"`` (absent = none), validated; one score per benchmark."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{where}: scores must be a list, not {type(raw).__name__}")
    out = tuple(Score.parse(s, f"{where} scores[{i}]") for i, s in enumerate(raw))
    seen: set[str] = set()
    for s in out:
        if s.benchmark in seen:
            raise SpecError(f"{where}: two scores for {s.benchmark}; keep the one the rule should use")
        seen.add(s.benchmark)
    return out


@dataclass(frozen=True, slots=True)
class Reference:
    """A point of the curve: a dense model of the reference family, its parameter count and scores."""

    name: str
    n_params: int
    scores: tuple[Score, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One benchmark's reading: the model's score and the reference size with that score."""

    benchmark: str
    value: float
    n_params: int
    clamped: str = ""  # "" inside the curve, "below" / "above" its ends (the end's size is used)


@dataclass(frozen=True, slots=True)
class Capacity:
    """A model's Qwen3-equivalent parameter count and the readings it is the geometric mean of."""

    n_params: int
    readings: tuple[Reading, ...]

    def describe(self) -> str:
        """One line: "18.9B Qwen3-equivalent (AIME24 80.4 -> 21.6B, AIME25 70.9 -> 16.5B)"."""
        parts = ", ".join(
            f"{r.benchmark} {r.value:g} -> {r.n_params / 1e9:.1f}B" + (f" ({r.clamped} the curve)" if r.clamped else "")
            for r in self.readings
        )
        return f"{self.n_params / 1e9:.1f}B Qwen3-equivalent ({parts})"


def curve(references: Iterable[Reference], benchmark: str) -> list[tuple[int, float]]:
    """(parameters, score) of the references that have ``benchmark`` in the reference mode, by
    size; empty unless the scores rise strictly with size (a saturated benchmark reads nothing)."""
    pts = sorted(
        (r.n_params, s.value) for r in references for s in r.scores
        if s.benchmark == benchmark and s.mode == REFERENCE_MODE
    )  # fmt: skip
    if len(pts) < 2 or any(b[0] <= a[0] or b[1] <= a[1] for a, b in zip(pts, pts[1:], strict=False)):
        return []
    return pts


def _read(pts: Sequence[tuple[int, float]], value: float) -> tuple[int, str]:
    if value <= pts[0][1]:
        return pts[0][0], "" if value == pts[0][1] else "below"
    if value >= pts[-1][1]:
        return pts[-1][0], "" if value == pts[-1][1] else "above"
    for (n0, v0), (n1, v1) in zip(pts, pts[1:], strict=False):
        if value == v1:
            return n1, ""
        if v0 < value < v1:
            frac = (value - v0) / (v1 - v0)
            return round(math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0)))), ""
    raise AssertionError("unreachable: the curve is strictly increasing")  # pragma: no cover


def equivalent_params(scores: Iterable[Score], references: Iterable[Reference]) -> Capacity | None:
    """The Qwen3-equivalent parameter count of a model with ``scores`` (module docstring); None when
    none of its benchmarks has a rising reference curve."""
    refs = list(references)
    readings: list[Reading] = []
    for s in scores:
        pts = curve(refs, s.benchmark)
        if pts:
            n, clamped = _read(pts, s.value)
            readings.append(Reading(s.benchmark, s.value, n, clamped))
    if not readings:
        return None
    if len({r.n_params for r in readings}) == 1:
        return Capacity(readings[0].n_params, tuple(readings))
    mean = math.exp(sum(math.log(r.n_params) for r in readings) / len(readings))
    return Capacity(round(mean), tuple(readings))
