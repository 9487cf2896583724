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

When a fit is too weak to act on (:func:`judge`), the profile records it but pick keeps the paper's
value for that constant, and calibrate says why and about how many problems would do:

* fewer than ``min_problems`` (30) problems: the bootstrap's interval means little there (n problems
  have only C(2n-1, n) distinct resamples: 10 for 3), however narrow it comes out;
* the fit held (gave a value of the same kind) in fewer than 90% of the resamples: whether it is an
  estimate or a bound is itself in doubt; a rough guide to the problems needed is n x (miss / 0.1)^2,
  the miss rate shrinking as 1/sqrt(n);
* its 95% interval spans more than ``max_spread`` (2x, high / low): pick's choices come in classes
  about 2x apart (0.6B, 1.7B, 4B, 8B, 14B models; 2k, 4k, 8k, 16k budgets), so a wider interval
  cannot tell two neighbouring classes apart and the point estimate is a coin flip between them. An
  interval narrows as 1/sqrt(n) (in log terms), so n x (ln spread / ln max_spread)^2 problems would
  bring it to ``max_spread``;
* a yes/no finding (4-bit on the frontier) that holds in more than 10% and fewer than 90% of the
  resamples.
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


MAX_SPREAD = 2.0  # an interval's high / low past which a fit is too wide to act on (module docstring)
MIN_PROBLEMS = 30  # fewer problems: no bootstrap interval is trusted
MIN_HELD = 0.9  # the share of resamples in which a fit must hold


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether pick may act on a fit: if not, why (one clause) and about how many problems would do."""

    actionable: bool
    reason: str = ""
    problems_needed: int | None = None


def judge(e: Estimate, n_problems: int, *, max_spread: float = MAX_SPREAD, min_problems: int = MIN_PROBLEMS) -> Verdict:
    """The rules of the module docstring, on one fitted constant (an undetermined one is not acted on
    anyway: actionable, with nothing to say)."""
    import math

    if e.value is None or e.kind == "undetermined":
        return Verdict(True)
    if not e.n_bootstrap:
        return Verdict(False, "it has no interval (--bootstrap 0)")
    reasons: list[str] = []
    need = [min_problems]
    if n_problems < min_problems:
        distinct = math.comb(2 * n_problems - 1, n_problems) if n_problems else 0
        reasons.append(f"fitted on {n_problems} problems ({distinct} distinct resamples; the rule needs "
                       f"{min_problems})")  # fmt: skip
    held = e.n_defined / e.n_bootstrap if e.n_bootstrap else 1.0
    if held < MIN_HELD:
        reasons.append(f"it held in only {e.n_defined} of {e.n_bootstrap} resamples")
        need.append(math.ceil(round(n_problems * ((1 - held) / (1 - MIN_HELD)) ** 2, 6)))
    if e.low is not None and e.high is not None and e.low > 0:
        spread = e.high / e.low
        if spread > max_spread:
            reasons.append(f"its 95% interval spans {spread:.1f}x (the rule allows {max_spread:g}x)")
            need.append(math.ceil(round(n_problems * (math.log(spread) / math.log(max_spread)) ** 2, 6)))
    else:
        reasons.append("it has no interval")
    if not reasons:
        return Verdict(True)
    return Verdict(False, "; ".join(reasons), max(need))


def judge_flag(f: Flag, n_problems: int, *, min_problems: int = MIN_PROBLEMS) -> Verdict:
    """A yes/no finding: acted on only when it holds in at most 10% or at least 90% of the resamples,
    and on ``min_problems`` or more."""
    if f.value is None:
        return Verdict(True)
    reasons = []
    if n_problems < min_problems:
        reasons.append(f"fitted on {n_problems} problems (the rule needs {min_problems})")
    if 1 - MIN_HELD < f.share < MIN_HELD:
        reasons.append(f"it holds in {f.share:.0%} of the resamples")
    return Verdict(not reasons, "; ".join(reasons), None if not reasons else min_problems)


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


def _est_dict(e: Estimate, v: Verdict) -> dict[str, Any]:
    return {"value": e.value, "kind": e.kind, "low": e.low, "high": e.high, "n_defined": e.n_defined,
            "actionable": v.actionable, "reason": v.reason or None, "problems_needed": v.problems_needed}  # fmt: skip


def profile_dict(
    cal: Calibration, *, name: str, sources: Sequence[str], max_spread: float = MAX_SPREAD,
    min_problems: int = MIN_PROBLEMS, capacity: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The profile JSON (``edgekv.store.profiles``): the fits, each with whether pick may act on it
    (:func:`judge`), and the Policy fields pick takes from them: a fit too weak to act on keeps the
    paper's value. ``warnings``: one line per fit that would have moved pick but is not used."""
    n = cal.n_problems

    def verdict(e: Estimate) -> Verdict:
        return judge(e, n, max_spread=max_spread, min_problems=min_problems)

    warnings: list[str] = []

    def use(field: str, label: str, default: float, e: Estimate, unit: Callable[[float], str]) -> float:
        fitted = resolve(default, e.value, e.kind)
        v = verdict(e)
        if fitted == default or v.actionable:
            return fitted
        more = (f"About {v.problems_needed} problems would do (this sweep has {n})" if v.problems_needed
                else "Rerun calibrate with --bootstrap 200 to measure its interval")  # fmt: skip
        warnings.append(f"{label} = {unit(fitted)} is too weak to act on: {v.reason}; pick keeps the paper's "
                        f"value ({unit(default)}). {more}")  # fmt: skip
        return default

    def gib(x: float) -> str:
        return f"{x / 2**30:.2f} GiB" if x else "none (G > 1 wherever it fits)"

    def tokens(x: float) -> str:
        return f"{int(x)} tokens"

    par = {
        acc.value: int(use("parallel_min_bytes", f"G > 1 pays from ({acc.value})", 0, e, gib))
        for acc, e in cal.parallel_min_bytes.items()
    }
    flags = {}
    for field, label, f in (("flat_precision", "4-bit weights on the frontier", cal.q4_weights),
                            ("q4_kv_ok", "4-bit KV on the frontier", cal.q4_kv)):  # fmt: skip
        fv = judge_flag(f, n, min_problems=min_problems)
        flags[field] = bool(f.value) and fv.actionable
        if f.value and not fv.actionable:
            warnings.append(f"{label} is too weak to act on: {fv.reason}; pick keeps the paper's rule. About "
                            f"{fv.problems_needed} problems would do (this sweep has {n})")  # fmt: skip
    policy = {
        "e1_bytes": int(use("e1_bytes", "E1", PAPER_DEFAULTS["e1_bytes"], cal.e1_bytes, gib)),
        "saturation_tokens": int(
            use(
                "saturation_tokens",
                "token saturation",
                PAPER_DEFAULTS["saturation_tokens"],
                cal.saturation_tokens,
                tokens,
            )
        ),  # fmt: skip
        "flat_precision": flags["flat_precision"],
        "q4_kv_ok": flags["q4_kv_ok"],
        "parallel_min_bytes": par[Accounting.RUNTIME.value],
        "parallel_min_bytes_by_accounting": par,
    }
    return {
        "schema": PROFILE_SCHEMA, "type": "profile", "name": name, "dataset": cal.dataset,
        "n_problems": cal.n_problems, "n_configs": cal.n_configs, "sources": list(sources),
        "fit": {"accounting": cal.accounting.value, "bootstrap": cal.e1_bytes.n_bootstrap, "seed": cal.seed,
                "level": LEVEL, "tolerance": cal.tolerance, "max_spread": max_spread, "min_problems": min_problems},
        "constants": {
            "e1_bytes": _est_dict(cal.e1_bytes, verdict(cal.e1_bytes)),
            "saturation_tokens": _est_dict(cal.saturation_tokens, verdict(cal.saturation_tokens)),
            "q4_weights_on_frontier": {"value": cal.q4_weights.value, "share": cal.q4_weights.share,
                                       "actionable": flags["flat_precision"] or not cal.q4_weights.value},
            "q4_kv_on_frontier": {"value": cal.q4_kv.value, "share": cal.q4_kv.share,
                                  "actionable": flags["q4_kv_ok"] or not cal.q4_kv.value},
            "parallel_min_bytes": {acc.value: _est_dict(e, verdict(e)) for acc, e in cal.parallel_min_bytes.items()},
        },
        "policy": policy,
        "warnings": warnings,
    } | ({"capacity": capacity} if capacity else {})  # fmt: skip
