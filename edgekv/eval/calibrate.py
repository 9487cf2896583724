"""Fit the scale rule's constants to a sweep's results, with bootstrap intervals over problems.

Pure (stdlib only), on ``frontier``'s points. Each constant is a function of one set of points;
the point estimate uses every problem, and the interval repeats the fit on ``n_bootstrap`` draws of
the problems with replacement (``random.Random(seed)``; the same draw for every configuration, so
the configurations stay paired), taking the 2.5th and 97.5th percentiles of the draws where the
fit gives a value (``n_defined`` says how many).

How each constant is fitted (on the Pareto frontier of the chosen accounting, paper by default):

* **E1** (rules 1-2): walk the frontier by memory. Each step from point a to the next point b
  grew either the weights (b's weight bytes minus a's exceed its KV bytes minus a's) or the
  tokens (the KV cache: a longer budget or more samples). E1 is the threshold c on a's effective
  size that best separates the two, "weights below c, tokens from c on": the c among the token
  steps' sizes with the fewest misclassified steps (the smallest such c on ties). No token step:
  E1 is above every frontier model (``at_least`` the largest). No weights step: ``at_most`` the
  smallest.
* **Token saturation** (rule 2): for each model file and KV type at or above the fitted E1 (all
  of them if E1 is not estimated) with two or more budgets, the G = 1 accuracy at each budget
  divided by its best; saturation is the smallest budget where the mean of that ratio reaches
  1 - ``tolerance`` (0.02). The largest budget (still growing at the one before): ``at_least``;
  the smallest: ``at_most``.
* **4-bit weights / 4-bit KV on the frontier** (rules 3, 5): whether any frontier point has
  weights of 4 bits or fewer (Q4*, IQ4*, Q3*, ...) / a KV type under 8 bits; ``share`` is the
  fraction of bootstrap draws where it does. None when the sweep measured no such configuration.
* **Memory where G > 1 starts paying** (rule 4): the least memory of a frontier point with more
  than one sample, fitted in both accountings. None on the frontier: ``at_least`` the most memory
  measured.
* **Qwen3-equivalent sizes** (``measured_capacity``, no bootstrap): the catalog models of the sweep
  placed on the curve of the sweep's own Qwen3 models, as ``plan.capacity`` places published scores;
  ``pick --profile`` ranks them by these instead of the published ones.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgekv.eval.frontier import Accounting, Point, PointScores, pareto, point_scores, points
from edgekv.eval.scores import ConfigResult
from edgekv.hub.names import model_stem, quant_of
from edgekv.model.quant import KvType
from edgekv.plan.capacity import REFERENCE_FAMILY, REFERENCE_MODE, Reference, Score, equivalent_params
from edgekv.plan.plans import bits_class
from edgekv.store.catalog import CatalogModel
from edgekv.store.profiles import PAPER_DEFAULTS, resolve
from edgekv.store.profiles import SCHEMA as PROFILE_SCHEMA

DEFAULT_BOOTSTRAP = 200
DEFAULT_TOLERANCE = 0.02  # saturation: within 2% of the best budget's accuracy
LEVEL = 0.95

Fit = tuple[float | None, str]  # (value, kind): kind is estimate | at_least | at_most | undetermined


@dataclass(frozen=True, slots=True)
class Estimate:
    """A fitted constant: its value on all problems, what kind of value, and its bootstrap interval."""

    value: float | None
    kind: str
    low: float | None
    high: float | None
    n_defined: int
    n_bootstrap: int


@dataclass(frozen=True, slots=True)
class Flag:
    """A yes/no finding: its value on all problems (None: not measured) and its bootstrap share."""

    value: bool | None
    share: float


@dataclass(frozen=True)
class Calibration:
    """Everything ``edgekv calibrate`` fits, with the data it came from."""

    e1_bytes: Estimate
    saturation_tokens: Estimate
    q4_weights: Flag
    q4_kv: Flag
    parallel_min_bytes: dict[Accounting, Estimate]
    accounting: Accounting
    dataset: str
    n_problems: int
    n_configs: int
    seed: int
    tolerance: float


def _steps(front: Sequence[Point]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for a, b in zip(front, front[1:], strict=False):
        dw, dkv = b.weights_bytes - a.weights_bytes, b.kv_bytes - a.kv_bytes
        out.append((a.effective_bytes, "weights" if dw > dkv else "tokens"))
    return out


def fit_e1(front: Sequence[Point]) -> Fit:
    """E1 from the frontier's steps (see the module docstring)."""
    steps = _steps(front)
    if not steps:
        return None, "undetermined"
    cands = sorted({e for e, kind in steps if kind == "tokens"})
    if not cands:
        return float(max(p.effective_bytes for p in front)), "at_least"
    if all(kind == "tokens" for _, kind in steps):
        return float(min(p.effective_bytes for p in front)), "at_most"

    def errors(c: int) -> int:
        return sum((kind == "weights") == (e >= c) for e, kind in steps)

    best = min(cands, key=lambda c: (errors(c), c))
    return float(best), "estimate"


def fit_saturation(pts: Sequence[Point], e1: Fit, *, tolerance: float = DEFAULT_TOLERANCE) -> Fit:
    """The budget where G = 1 accuracy stops growing (see the module docstring)."""
    groups: dict[tuple[str, str, str, str], dict[int, float]] = {}
    for p in pts:
        if p.samples == 1:
            groups.setdefault((p.model, p.quant, p.type_k, p.type_v), {})[p.budget_tokens] = p.accuracy
    e_of = {(p.model, p.quant): p.effective_bytes for p in pts}
    curves = [c for c in groups.values() if len(c) >= 2 and max(c.values()) > 0]
    if e1[1] in ("estimate", "at_most") and e1[0] is not None:
        above = [c for key, c in groups.items() if e_of[key[:2]] >= e1[0] and len(c) >= 2 and max(c.values()) > 0]
        curves = above or curves
    if not curves:
        return None, "undetermined"
    ratios: dict[int, list[float]] = {}
    for c in curves:
        top = max(c.values())
        for b, acc in c.items():
            ratios.setdefault(b, []).append(acc / top)
    budgets = sorted(ratios)
    mean = {b: sum(v) / len(v) for b, v in ratios.items()}
    sat = next((b for b in budgets if mean[b] >= 1 - tolerance), budgets[-1])
    if sat == budgets[0]:
        return float(sat), "at_most"
    if sat == budgets[-1]:
        return float(sat), "at_least"
    return float(sat), "estimate"


def _q4_weights(front: Sequence[Point]) -> bool:
    return any(bits_class(p.quant) <= 0 for p in front)


def _q4_kv(front: Sequence[Point]) -> bool:
    return any(min(KvType.parse(p.type_k).bits, KvType.parse(p.type_v).bits) < 8 for p in front)


def fit_parallel(pts: Sequence[Point], accounting: Accounting) -> Fit:
    """The least memory of a frontier point with G > 1 (see the module docstring)."""
    multi = [p for p in pts if p.samples > 1]
    if not multi:
        return None, "undetermined"
    on = [p.memory(accounting) for p in pareto(pts, accounting) if p.samples > 1]
    if on:
        return float(min(on)), "estimate"
    return float(max(p.memory(accounting) for p in pts)), "at_least"


@dataclass(frozen=True, slots=True)
class _Fits:
    e1: Fit
    saturation: Fit
    q4_weights: bool
    q4_kv: bool
    parallel_paper: Fit
    parallel_runtime: Fit


def _percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    i = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[i]


def _estimate(full: Fit, draws: Sequence[Fit]) -> Estimate:
    vals = [v for v, kind in draws if v is not None and kind == full[1]]
    lo = _percentile(vals, (1 - LEVEL) / 2) if vals else None
    hi = _percentile(vals, 1 - (1 - LEVEL) / 2) if vals else None
    return Estimate(full[0], full[1], lo, hi, len(vals), len(draws))


def _draws(pids: Sequence[str], n: int, seed: int) -> list[Counter[str]]:
    rng = random.Random(seed)
    return [Counter(rng.choice(pids) for _ in pids) for _ in range(n)]


def calibrate(
    results: Sequence[ConfigResult],
    *,
    accounting: Accounting = Accounting.PAPER,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Calibration:
    """Fit E1, the token saturation, the 4-bit findings and the G > 1 memory (module docstring)."""
    scored: list[PointScores] = point_scores(results)
    pids = sorted({pid for s in scored for pid in s.scores})
    draws = _draws(pids, n_bootstrap, seed) if pids else []

    def fits(pts: list[Point]) -> _Fits:
        front = pareto(pts, accounting)
        e1 = fit_e1(front)
        return _Fits(
            e1, fit_saturation(pts, e1, tolerance=tolerance), _q4_weights(front), _q4_kv(front),
            fit_parallel(pts, Accounting.PAPER), fit_parallel(pts, Accounting.RUNTIME),
        )  # fmt: skip

    full = fits(points(scored))
    boot = [fits(points(scored, d)) for d in draws]

    def flag(value: bool, shares: list[bool], measured: Callable[[Point], bool]) -> Flag:
        share = sum(shares) / len(shares) if shares else float(value)
        return Flag(value if any(measured(s.point) for s in scored) else None, share)

    return Calibration(
        e1_bytes=_estimate(full.e1, [b.e1 for b in boot]),
        saturation_tokens=_estimate(full.saturation, [b.saturation for b in boot]),
        q4_weights=flag(full.q4_weights, [b.q4_weights for b in boot], lambda p: bits_class(p.quant) <= 0),
        q4_kv=flag(full.q4_kv, [b.q4_kv for b in boot], lambda p: _q4_kv([p])),
        parallel_min_bytes={
            Accounting.PAPER: _estimate(full.parallel_paper, [b.parallel_paper for b in boot]),
            Accounting.RUNTIME: _estimate(full.parallel_runtime, [b.parallel_runtime for b in boot]),
        },
        accounting=accounting,
        dataset=",".join(sorted({r.info.dataset for r in results if r.info.dataset})),
        n_problems=len(pids),
        n_configs=len(results),
        seed=seed,
        tolerance=tolerance,
    )


def catalog_name(model: str, models: Sequence[CatalogModel]) -> CatalogModel | None:
    """The catalog model a result's model file is of: by its published file name, else by the file's
    stem without its quant label (``Qwen3-8B-Q8_0.gguf`` -> Qwen3-8B), case-insensitive."""
    base = model.rsplit("/", 1)[-1]
    for m in models:
        if any(e.file and e.file.rsplit("/", 1)[-1] == base for e in m.quants.values()):
            return m
    stem = model_stem(base, quant_of(base)).lower()
    return next((m for m in models if m.name.lower() == stem), None)


def measured_capacity(results: Sequence[ConfigResult], models: Sequence[CatalogModel]) -> dict[str, dict[str, Any]]:
    """Each measured model's Qwen3-equivalent size from the sweep's own accuracies: a profile's
    ``capacity``, which ``pick --profile`` uses in place of the published one.

    ``plan.capacity``'s method on the user's numbers: a model's score is its best G = 1 accuracy (over
    quants and KV types) at the largest budget every catalog model of the sweep was measured at, so all
    are compared at one budget; the curve is the sweep's dense Qwen3 models at their catalog parameter
    counts. Empty when fewer than two of them were measured or their accuracies do not rise with size;
    models outside the catalog (no parameter count) and the curve's own models get none."""
    pts = [p for p in points(point_scores(results)) if p.samples == 1]
    found = {p.model: catalog_name(p.model, models) for p in pts}
    budgets: dict[str, set[int]] = {}
    for p in pts:
        m = found[p.model]
        if m is not None:
            budgets.setdefault(m.name, set()).add(p.budget_tokens)
    common = set.intersection(*budgets.values()) if budgets else set()
    if not common:
        return {}
    budget = max(common)
    acc: dict[str, float] = {}
    for p in pts:
        m = found[p.model]
        if m is not None and p.budget_tokens == budget:
            acc[m.name] = max(acc.get(m.name, 0.0), p.accuracy)
    by_name = {m.name: m for m in models}
    label = f"measured@{budget}"
    source = "your sweep (edgekv calibrate)"

    def score(name: str) -> Score:
        return Score(label, REFERENCE_MODE, 100 * acc[name], source)

    refs = [
        Reference(n, by_name[n].n_params, (score(n),)) for n in acc
        if by_name[n].family == REFERENCE_FAMILY and not by_name[n].spec.is_moe
    ]  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for n in sorted(acc):
        if any(r.name == n for r in refs):
            continue
        cap = equivalent_params([score(n)], refs)
        if cap is not None:
            out[n] = {"n_params": cap.n_params, "note": cap.describe(), "budget_tokens": budget}
    return out


def _est_dict(e: Estimate) -> dict[str, Any]:
    return {"value": e.value, "kind": e.kind, "low": e.low, "high": e.high, "n_defined": e.n_defined}


def profile_dict(
    cal: Calibration, *, name: str, sources: Sequence[str], capacity: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The profile JSON (``edgekv.store.profiles``): the fits, the Policy fields pick takes from them,
    and the measured Qwen3-equivalent sizes (``measured_capacity``) when the sweep gave any."""
    par = {acc.value: int(resolve(0, e.value, e.kind)) for acc, e in cal.parallel_min_bytes.items()}
    policy = {
        "e1_bytes": int(resolve(PAPER_DEFAULTS["e1_bytes"], cal.e1_bytes.value, cal.e1_bytes.kind)),
        "saturation_tokens": int(
            resolve(PAPER_DEFAULTS["saturation_tokens"], cal.saturation_tokens.value, cal.saturation_tokens.kind)
        ),
        "flat_precision": bool(cal.q4_weights.value),
        "q4_kv_ok": bool(cal.q4_kv.value),
        "parallel_min_bytes": par[Accounting.RUNTIME.value],
        "parallel_min_bytes_by_accounting": par,
    }
    return {
        "schema": PROFILE_SCHEMA, "type": "profile", "name": name, "dataset": cal.dataset,
        "n_problems": cal.n_problems, "n_configs": cal.n_configs, "sources": list(sources),
        "fit": {"accounting": cal.accounting.value, "bootstrap": cal.e1_bytes.n_bootstrap, "seed": cal.seed,
                "level": LEVEL, "tolerance": cal.tolerance},
        "constants": {
            "e1_bytes": _est_dict(cal.e1_bytes),
            "saturation_tokens": _est_dict(cal.saturation_tokens),
            "q4_weights_on_frontier": {"value": cal.q4_weights.value, "share": cal.q4_weights.share},
            "q4_kv_on_frontier": {"value": cal.q4_kv.value, "share": cal.q4_kv.share},
            "parallel_min_bytes": {acc.value: _est_dict(e) for acc, e in cal.parallel_min_bytes.items()},
        },
        "policy": policy,
    } | ({"capacity": capacity} if capacity else {})  # fmt: skip
