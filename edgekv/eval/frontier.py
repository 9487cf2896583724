"""The accuracy/memory frontier of a sweep, in the paper's accounting and in edgekv's.

Pure (stdlib only), built on ``results.read_results``'s tables, so it is tested on constructed
result sets. Each configuration run with G samples gives one point per G' in {1, 2, 4, ..., G}:

* Choice: a G-sample run also yields the G' < G points. maj@G' is majority voting over the first
  G' samples, which is what a G'-sample run does (each sample has its own KV stream and its own
  seed); for G' = 1 the point's accuracy is pass@1 averaged over all G samples (the paper's
  estimator, lower variance than the first sample alone). So the sweep runs G = 1 only where no
  larger G of the same model file, KV type and budget fits any card.
* The memory of a G' point is the run's with the KV cache scaled by G'/G: llama.cpp gives every
  sequence its own stream of the same padded size, so the KV bytes are exactly linear in G; the
  compute buffer with flash attention does not depend on the context (docs/memory.md).

Accountings: ``paper`` = weights + KV (what the paper plots), ``runtime`` = the whole process
(weights + KV + compute + CUDA overhead + margin, as ``edgekv pick`` counts it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from edgekv.eval.scores import ConfigResult


class Accounting(str, enum.Enum):
    PAPER = "paper"  # weights + KV
    RUNTIME = "runtime"  # the whole process


def derived_samples(g: int) -> tuple[int, ...]:
    """The G' points a G-sample run gives: 1, powers of two below G, and G itself."""
    ks = {1, g}
    k = 2
    while k < g:
        ks.add(k)
        k *= 2
    return tuple(sorted(ks))


@dataclass(frozen=True, slots=True)
class Point:
    """One (configuration, G') point: what it is, its memory in both accountings, its accuracy."""

    config_id: str
    model: str
    quant: str
    effective_bytes: int
    type_k: str
    type_v: str
    budget_tokens: int
    samples: int  # G' of this point
    run_samples: int  # G of the run it comes from
    weights_bytes: int
    kv_bytes: int  # at G'
    paper_bytes: int
    runtime_bytes: int
    accuracy: float
    n_problems: int

    def memory(self, accounting: Accounting) -> int:
        return self.paper_bytes if accounting == Accounting.PAPER else self.runtime_bytes

    @property
    def derived(self) -> bool:
        return self.samples != self.run_samples

    @property
    def label(self) -> str:
        """Budget and G, as the plot writes them: ``8k x4``."""
        b = self.budget_tokens
        tokens = f"{b // 1024}k" if b % 1024 == 0 else str(b)
        return tokens + (f" x{self.samples}" if self.samples > 1 else "")

    @property
    def kv_label(self) -> str:
        return self.type_k if self.type_k == self.type_v else f"{self.type_k}/{self.type_v}"


@dataclass(frozen=True, slots=True)
class PointScores:
    """A point without its accuracy, plus its per-problem score (0/1, or a fraction for pass@1)."""

    point: Point
    scores: Mapping[str, float]

    def accuracy(self, weights: Mapping[str, float] | None = None) -> float:
        """Mean score; with ``weights`` (problem -> count, a bootstrap draw) the weighted mean."""
        if weights is None:
            return sum(self.scores.values()) / len(self.scores) if self.scores else 0.0
        num = den = 0.0
        for pid, w in weights.items():
            s = self.scores.get(pid)
            if s is not None:
                num += w * s
                den += w
        return num / den if den else 0.0


def point_scores(results: Iterable[ConfigResult]) -> list[PointScores]:
    """Every (configuration, G') point of ``results`` with its per-problem scores."""
    out: list[PointScores] = []
    for r in results:
        info = r.info
        if not r.problems:
            continue
        for k in derived_samples(info.samples):
            if k == 1:
                scores = {pid: sum(p.correct) / len(p.correct) for pid, p in r.problems.items() if p.correct}
            else:
                scores = {pid: float(p.maj_correct[k - 1]) for pid, p in r.problems.items() if len(p.maj_correct) >= k}
            kv = info.kv_bytes * k // max(info.samples, 1)
            point = Point(
                config_id=info.config_id, model=info.model, quant=info.quant, effective_bytes=info.effective_bytes,
                type_k=info.type_k, type_v=info.type_v, budget_tokens=info.budget_tokens, samples=k,
                run_samples=info.samples, weights_bytes=info.weights_bytes, kv_bytes=kv,
                paper_bytes=info.paper_total_bytes - info.kv_bytes + kv,
                runtime_bytes=info.total_bytes - info.kv_bytes + kv, accuracy=0.0, n_problems=len(scores),
            )  # fmt: skip
            out.append(PointScores(point, scores))
    return out


def points(scored: Sequence[PointScores], weights: Mapping[str, float] | None = None) -> list[Point]:
    """The points with their accuracy (over all problems, or a bootstrap draw's ``weights``)."""
    return [replace(s.point, accuracy=s.accuracy(weights)) for s in scored]


def pareto(pts: Iterable[Point], accounting: Accounting) -> list[Point]:
    """The frontier: points no other point beats with at most as much memory, by memory ascending.

    A point joins only if its accuracy is strictly above every point of no more memory, and above
    zero: a configuration that never answers right is no better than running nothing (without this
    the cheapest configuration measured, however useless, would open every frontier: in the GPU
    sweep a 0%-accurate gemma-3-270m Q2_K with q4_0 KV made "4-bit KV reaches the frontier" true).
    """
    ordered = sorted(pts, key=lambda p: (p.memory(accounting), -p.accuracy, p.config_id, p.samples))
    out: list[Point] = []
    best = 0.0
    for p in ordered:
        if p.accuracy > best + 1e-12:
            out.append(p)
            best = p.accuracy
    return out


@dataclass(frozen=True, slots=True)
class PickMark:
    """pick's plan for one card, matched to a sweep point (recorded by the sweep's manifest)."""

    vram_bytes: int
    model: str
    quant: str
    type_k: str
    type_v: str
    budget_tokens: int
    samples: int

    def matches(self, p: Point) -> bool:
        return (p.model, p.quant, p.type_k, p.type_v, p.budget_tokens, p.samples) == (
            self.model, self.quant, self.type_k, self.type_v, self.budget_tokens, self.samples,
        )  # fmt: skip


@dataclass(frozen=True)
class Frontier:
    """All points, each accounting's Pareto frontier, and pick's plans where the sweep knows them."""

    points: list[Point]
    paper: list[Point]
    runtime: list[Point]
    picks: tuple[PickMark, ...] = ()
    dataset: str = ""
    n_problems: int = 0

    def on(self, accounting: Accounting) -> list[Point]:
        return self.paper if accounting == Accounting.PAPER else self.runtime

    def picked(self, p: Point) -> list[PickMark]:
        return [m for m in self.picks if m.matches(p)]


def frontier(results: Sequence[ConfigResult], *, picks: Sequence[PickMark] = ()) -> Frontier:
    """Points of ``results`` and their frontiers in both accountings."""
    pts = points(point_scores(results))
    datasets = sorted({r.info.dataset for r in results if r.info.dataset})
    problems = {pid for r in results for pid in r.problems}
    return Frontier(
        pts, pareto(pts, Accounting.PAPER), pareto(pts, Accounting.RUNTIME), tuple(picks),
        ",".join(datasets), len(problems),
    )  # fmt: skip
