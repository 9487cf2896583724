"""Properties of the scale rule over a card walk (bench/pick_walk.py writes the same walk to CSV).

Cards from 2 to 48 GiB x task x family (qwen3, all) x accounting (paper, runtime), picked by the
library ``edgekv.plan.pick.pick``. The default run walks a coarse grid (2 GiB steps); the full
0.25 GiB grid is marked slow. Each property follows from the rule, not from hand-picked outputs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import pytest

from edgekv.errors import NoFeasiblePlan
from edgekv.model.quant import KvType, WeightQuant
from edgekv.model.spec import ModelSpec, Task
from edgekv.plan import preflight
from edgekv.plan.memory import MEASURED_SLACK_BYTES, RunConfig, compute_breakdown
from edgekv.plan.pick import pick
from edgekv.plan.plans import ModelOption, PickResult, Plan, sizes
from edgekv.plan.policy import rank_key
from edgekv.plan.requests import PickRequest
from edgekv.store import catalog
from edgekv.store.catalog import catalog_options
from edgekv.store.catalog_build import quant_spec
from edgekv.units import GIB

TASKS = (Task.MATH, Task.CODE, Task.KNOWLEDGE)
FAMILIES = ("qwen3", "all")
ACCOUNTINGS = ("paper", "runtime")
RAM = 32 * GIB  # --ram: the consumer machine (plans may keep MoE experts there)
Walk = dict[tuple[str, Task, str], list[PickResult]]  # (accounting, task, family) -> results by card


def _walk(step_gib: float) -> Walk:
    options: dict[str, list[ModelOption]] = {f: catalog_options(f) for f in FAMILIES}
    cards = [round((2 + i * step_gib) * GIB) for i in range(round(46 / step_gib) + 1)]
    out: Walk = {(a, t, f): [] for a in ACCOUNTINGS for t in TASKS for f in FAMILIES}
    for acc in ACCOUNTINGS:
        for vram in cards:
            try:
                first = pick(PickRequest(vram_bytes=vram, accounting=acc, top=1, ram_bytes=RAM), options["all"])
            except NoFeasiblePlan:
                continue
            for task in TASKS:
                for fam in FAMILIES:
                    out[(acc, task, fam)].append(
                        pick(PickRequest(vram_bytes=vram, task=task, accounting=acc, top=0, ram_bytes=RAM),
                             options[fam], plans=first.enumerated)
                    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def coarse() -> Walk:
    return _walk(2.0)


@pytest.fixture(scope="module")
def full() -> Walk:
    return _walk(0.25)


def _results(walk: Walk) -> Iterator[PickResult]:
    for results in walk.values():
        yield from results


def _floor(r: PickResult) -> int:
    return max(r.policy.token_floor, r.policy.min_ctx)


def check_no_16_bit_small_model_over_its_8_bit_sibling(walk: Walk) -> None:
    """(1) Rule 3: below E1, a math/code top plan never uses weights above 8 bits while its Q8_0
    sibling fits with at least as many tokens."""
    for r in _results(walk):
        top = r.plans[0]
        if r.policy.task == Task.KNOWLEDGE or top.regime != "capacity" or top.option.weight_bits <= 8:
            continue
        sib = [p for p in r.plans if p.option.name == top.option.name and p.option.quant == "Q8_0"]
        assert not (sib and sib[0].n_ctx_seq >= top.n_ctx_seq), (r.budget, top.option.quant, sib[0].n_ctx_seq)


def check_floor_reached_when_possible(walk: Walk) -> None:
    """(2) Every top plan reaches the token floor when any plan does."""
    for r in _results(walk):
        if any(p.n_ctx_seq >= _floor(r) for p in r.enumerated):
            assert r.plans[0].n_ctx_seq >= _floor(r), (r.budget, r.plans[0].option.name)


def check_parallel_only_at_e1(walk: Walk) -> None:
    """(3) Rule 4: G > 1 only at E >= E1 (every ranked plan, not only the top), E as the rule counts it:
    scaled to the model's Qwen3-equivalent size under the default ``capacity`` "published"."""
    for r in _results(walk):
        for p in r.plans:
            e16 = sizes(p.option, r.policy)[0]
            assert p.parallel == 1 or e16 >= r.policy.e1_bytes, (r.budget, p.option.name)


def _equivalent_capacity(p: Plan, r: PickResult) -> float:
    """A plan's Qwen3-equivalent capacity as the rule compares it with capacity "published" (whatever
    the result's own setting): its 8-bit-capped E scaled to the Qwen3-equivalent size, or for the
    knowledge task its Qwen3-equivalent parameter count."""
    policy = dataclasses.replace(r.policy, capacity="published")
    if r.policy.task == Task.KNOWLEDGE:
        return float(p.option.rule_params(policy))
    return float(sizes(p.option, policy)[1])


def check_no_pick_over_more_capacity_and_tokens(walk: Walk) -> None:
    """(6) Cross-family capacity: no top plan has a feasible plan of another model beside it with more
    Qwen3-equivalent capacity and at least as many tokens per sample, at the same KV types and samples
    and at least the same weight precision (precision has its own rule 3: the 8-bit 8B over a 4-bit
    14B at 12 GiB is rule 3's choice, not a capacity one)."""
    for r in _results(walk):
        t = r.plans[0]
        cap_t = _equivalent_capacity(t, r)
        for q in r.enumerated:
            if q.option.name == t.option.name or (q.type_k, q.type_v, q.parallel) != (t.type_k, t.type_v, t.parallel):
                continue
            if q.option.bits_class < t.option.bits_class:
                continue
            assert not (_equivalent_capacity(q, r) > cap_t and q.n_ctx_seq >= t.n_ctx_seq), (
                r.budget.vram_bytes / GIB, t.option.name, t.option.quant, q.option.name, q.option.quant,
            )  # fmt: skip


def _q4_needed(r: PickResult) -> bool:
    return not any(
        p.n_ctx_seq >= _floor(r) and KvType.Q4_0 not in (p.type_k, p.type_v) for p in r.enumerated
    )  # as policy.pick decides it


def check_no_rank_reversal(walk: Walk) -> None:
    """(4) A larger card's top plan is never worse, by the rule's own sort key under the larger
    card's policy and budget, than a smaller card's top plan (which also fits the larger card)."""
    for results in walk.values():
        for j, big in enumerate(results):
            top_big: Plan = big.plans[0]
            q4 = _q4_needed(big)
            for small in results[:j]:
                top_small = small.plans[0]
                assert top_small.footprint.gpu_total <= big.budget.vram_bytes
                key_small = rank_key(top_small, big.policy, q4_needed=q4)
                assert top_big.sort_key >= key_small, (small.budget.vram_bytes / GIB, big.budget.vram_bytes / GIB)


@functools.cache
def _header_spec(name: str, quant: str) -> ModelSpec:
    """What run reads from the published GGUF's header: every tensor with its quantized type."""
    m = catalog.find(name)
    return quant_spec(m.config, m.name, WeightQuant.parse(quant))


def _reserve(plan: Plan) -> preflight.ComputeProbe:
    """What llama.cpp reserves for a configuration of ``plan``'s model, as far as measured: the term's
    largest moment plus the most it fell short of llama.cpp's dry run on the GPU (at most
    MEASURED_SLACK_BYTES: tests/plan/test_compute_grid.py)."""
    spec, figs = plan.option.spec, plan.option.compute_figures()

    def probe(cfg: RunConfig) -> int:
        return int(compute_breakdown(spec, cfg, figs)["exact"]) + MEASURED_SLACK_BYTES

    return probe


def check_runs_preflight_accepts_every_plan(walk: Walk) -> None:
    """(5) pick and run never disagree: every ranked plan of the runtime accounting is accepted by
    run's pre-flight (``preflight.preflight`` with the spec read from the model's GGUF header, margin 0
    as ``edgekv run`` defaults to, the compute buffer as llama.cpp's dry run would give it) under the
    card pick planned for, and pick's
    total is what run predicts plus pick's margin. (The paper's accounting leaves out the compute
    buffer, CUDA overhead and margin: its plans are not meant to pass.)"""
    seen: set[tuple[str, str, str, int, int, int, int]] = set()
    for (acc, _task, _fam), results in walk.items():
        if acc != "runtime":
            continue
        for r in results:
            for p in r.plans:
                key = (p.option.name, p.option.quant, p.kv_label, p.n_ctx, p.parallel, r.budget.vram_bytes,
                       p.n_cpu_moe)  # fmt: skip
                if key in seen:
                    continue
                seen.add(key)
                cfg = RunConfig(
                    n_ctx=p.n_ctx, type_k=p.type_k, type_v=p.type_v, n_seq=p.parallel, n_gpu_layers=p.n_gpu_layers,
                    n_ubatch=r.policy.n_ubatch, n_cpu_moe=p.n_cpu_moe,
                )  # fmt: skip
                spec = _header_spec(p.option.name, p.option.quant)
                check = preflight.preflight(spec, cfg, have_bytes=r.budget.vram_bytes, gpu=True, compute=_reserve(p),
                                            ram_bytes=r.budget.ram_bytes)  # fmt: skip
                assert check.need_bytes <= r.budget.vram_bytes
                assert check.footprint.host_total <= (r.budget.ram_bytes or 0) or r.budget.ram_bytes is None
                assert check.need_bytes + p.footprint.margin <= p.footprint.gpu_total, (key, check.footprint)
    assert seen


CHECKS = [
    check_no_16_bit_small_model_over_its_8_bit_sibling,
    check_floor_reached_when_possible,
    check_parallel_only_at_e1,
    check_no_rank_reversal,
    check_runs_preflight_accepts_every_plan,
    check_no_pick_over_more_capacity_and_tokens,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_coarse_walk(coarse: Walk, check: object) -> None:
    assert callable(check)
    check(coarse)


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_full_walk(full: Walk, check: object) -> None:
    assert callable(check)
    check(full)


def test_coarse_walk_covers_the_grid(coarse: Walk) -> None:
    assert len(coarse) == len(ACCOUNTINGS) * len(TASKS) * len(FAMILIES)
    assert all(len(results) == 24 for results in coarse.values())  # 2, 4, ..., 48 GiB: all fit


def test_property_1_fails_without_the_cap() -> None:
    """The property is the setting's: with --no-cap-precision, 16-bit Qwen3-1.7B tops 3.5 GiB (GPU
    only: with RAM, Qwen3-30B-A3B with its experts there ranks above every dense model here)."""
    r = pick(
        PickRequest(vram_bytes=round(3.5 * GIB), accounting="paper", cap_precision=False, top=0),
        catalog_options("qwen3"),
    )
    with pytest.raises(AssertionError):
        check_no_16_bit_small_model_over_its_8_bit_sibling({("paper", Task.MATH, "qwen3"): [r]})


def test_property_5_catches_a_buffer_counted_at_4k() -> None:
    """What issue #29 saw: counted at 4k tokens (its old constant), the compute buffer let pick give a
    32 GiB card Qwen3-14B Q8_0 at 34,816 tokens x 6 (208,896 in all), which run's pre-flight refuses."""
    from edgekv.errors import DoesNotFit
    from edgekv.model.quant import KvType
    from edgekv.plan.fit import FitTerms, largest_tokens_per_seq
    from edgekv.plan.policy import fit_terms

    opt = next(o for o in catalog_options(None, ["Qwen3-14B"], None) if o.quant == "Q8_0")
    cfg = RunConfig(n_ctx=256, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_seq=6)
    r = pick(PickRequest(vram_bytes=32 * GIB, top=1), [opt])
    terms = fit_terms(opt, cfg, r.budget)
    at_4k = opt.compute_bytes(cfg.with_ctx(4096))[0]
    old = FitTerms(terms.layout, at_4k, "catalog", terms.overhead_bytes, terms.margin_bytes)
    t, fp = largest_tokens_per_seq(opt.spec, cfg, have_bytes=32 * GIB, terms=old)
    assert (t, fp is not None) == (34816, True)  # the plan
    plan = Plan(opt, KvType.Q8_0, KvType.Q8_0, t, 6, -1, fp, "generation")  # type: ignore[arg-type]
    with pytest.raises(DoesNotFit, match="short"):
        spec = _header_spec(opt.name, opt.quant)
        preflight.preflight(spec, cfg.with_ctx(t * 6), have_bytes=32 * GIB, gpu=True, compute=_reserve(plan))
    assert r.plans[0].n_ctx < t * 6  # the term gives a shorter context at G = 6 ...
    check_runs_preflight_accepts_every_plan({("runtime", Task.MATH, "all"): [r]})  # ... which run accepts


def test_property_6_fails_with_capacity_by_size() -> None:
    """The property is the setting's: with capacity "size" (E alone) a 16 GiB card's math pick over every
    family is DeepSeek-R1-Distill-Qwen-7B at F16 by its bytes, though its AIME'24 (55.5) reads as a
    Qwen3-2.2B and Phi-4-mini-reasoning (no scores: its own 3.8B) at BF16 fits beside it with more."""
    options = catalog_options("all")
    by_size = pick(PickRequest(vram_bytes=16 * GIB, capacity="size", top=0), options)
    with pytest.raises(AssertionError):
        check_no_pick_over_more_capacity_and_tokens({("runtime", Task.MATH, "all"): [by_size]})
    published = pick(PickRequest(vram_bytes=16 * GIB, top=0), options)
    check_no_pick_over_more_capacity_and_tokens({("runtime", Task.MATH, "all"): [published]})
