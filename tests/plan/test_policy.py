"""The scale rule (policy.py, issue #3) as tables of card x task -> plan, plus invariants.

Plans are computed by the library ``edgekv.plan.pick.pick`` (what ``edgekv pick`` calls), with
its defaults.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgekv.errors import NoFeasiblePlan
from edgekv.model.quant import KvType
from edgekv.model.spec import Task
from edgekv.plan import pick as library
from edgekv.plan import policy
from edgekv.plan.plans import E1_BYTES, PickResult, Plan
from edgekv.plan.requests import PickRequest
from edgekv.store import catalog
from edgekv.units import parse_size

PAPER = {"accounting": "paper"}  # weights + KV only: overhead 0, margin 0, compute not counted
# The paper's own setting on top: 16-bit KV and GPTQ's 4/8/16-bit weights only.
PAPER_BITS = {**PAPER, "kv_types": (KvType.F16,), "quants": ["Q4_K_M", "Q8_0", "BF16"]}


def pick(
    vram: str, task: str = "math", family: str = "qwen3", top: int = 5, *,
    models: list[str] | None = None, quants: list[str] | None = None, **extra: Any,
) -> PickResult:  # fmt: skip
    request = PickRequest(vram_bytes=parse_size(vram), task=Task(task), top=top, **extra)
    return library.pick(request, catalog.catalog_options(family, models, quants))


def top_of(result: PickResult) -> tuple[str, str]:
    p = result.plans[0]
    return p.option.name, p.option.quant


@pytest.mark.parametrize(
    ("vram", "task", "family", "extra", "expected"),
    [
        # paper rule 1, its own example: at ~2.6 GiB Qwen3-1.7B 8-bit (8k tokens here, 6k in the
        # paper) beats Qwen3-0.6B 8-bit with a longer budget (18.7k here, 18k in the paper)
        ("2.6G", "math", "qwen3", PAPER_BITS, ("Qwen3-1.7B", "Q8_0")),
        # trap: with llama.cpp's Q4_0 and q8_0 KV, Qwen3-4B (2.2 GiB) fits with 5.4k tokens, past the
        # 4k floor; below E1 effective size decides (rules 1+3 combined), so the bigger model wins
        ("2.6G", "math", "qwen3", PAPER, ("Qwen3-4B", "Q4_0")),
        # rule 3: math keeps 8-bit weights; 8B Q8_0 (E 8.1 GiB, near E2) over 14B at 4 bits
        ("12G", "math", "qwen3", {}, ("Qwen3-8B", "Q8_0")),
        # rule 3: knowledge prefers more parameters at 4 bits
        ("12G", "knowledge", "qwen3", {}, ("Qwen3-14B", "Q4_K_M")),
        ("16G", "math", "qwen3", {}, ("Qwen3-8B", "Q8_0")),
        # knowledge: any >= 4-bit alike, then parameters, then tokens: Q5_K_M reaches saturation too
        ("16G", "knowledge", "qwen3", {}, ("Qwen3-14B", "Q5_K_M")),
        # 24G: 14B at 8 bits now fits with saturation and 3 samples: 8/16-bit class first
        ("24G", "math", "qwen3", {}, ("Qwen3-14B", "Q8_0")),
        ("24G", "knowledge", "qwen3", {}, ("Qwen3-32B", "Q4_K_M")),
        # 8G: 8-bit 4B (Q8_0 3.98 GiB is within 10% of E1: generation regime) with a saturated budget
        ("8G", "math", "qwen3", {}, ("Qwen3-4B", "Q8_0")),
        ("8G", "code", "qwen3", {}, ("Qwen3-4B", "Q8_0")),
        # the R1 distills follow the same rule
        # published AIME24 (arXiv:2501.12948 Table 5): the 14B's 69.7 reads as a Qwen3-3.5B, the 7B's 55.5 as 2.2B
        ("12G", "math", "deepseek-r1-distill", {}, ("DeepSeek-R1-Distill-Qwen-14B", "Q5_K_M")),
    ],
)
def test_top_plan(vram: str, task: str, family: str, extra: dict[str, Any], expected: tuple[str, str]) -> None:
    assert top_of(pick(vram, task, family, **extra)) == expected


def test_paper_example_ranks_above_every_0_6b_plan() -> None:
    result = pick("2.6G", top=0, **PAPER_BITS)
    best = result.plans[0]
    assert (best.option.name, best.option.quant, best.kv_label) == ("Qwen3-1.7B", "Q8_0", "f16")
    small = [p for p in result.plans if p.option.name == "Qwen3-0.6B"]
    assert small and all(p.n_ctx_seq > best.n_ctx_seq for p in small)  # they have longer budgets...
    assert all(result.plans.index(p) > 0 for p in small)  # ...and still rank below
    assert best.regime == "capacity"
    assert best.footprint.compute == best.footprint.overhead == best.footprint.margin == 0
    assert best.footprint.gpu_total == best.footprint.weights_gpu + best.footprint.kv <= parse_size("2.6G")


def test_8b_q8_beats_14b_q4_for_math() -> None:
    """Paper rule 3: Qwen3-8B 8-bit beats Qwen3-14B 4-bit on AIME25, where both fit."""
    for vram in ("16G", "24G"):
        names = [(p.option.name, p.option.quant) for p in pick(vram, top=0).plans]
        assert names.index(("Qwen3-8B", "Q8_0")) < names.index(("Qwen3-14B", "Q4_K_M")), vram


@pytest.mark.parametrize("extra", [PAPER, PAPER_BITS])
@pytest.mark.parametrize("vram", ["12G", "16G", "24G"])
def test_8b_q8_beats_14b_q4_for_math_in_paper_accounting(vram: str, extra: dict[str, Any]) -> None:
    """Paper rule 3 in the paper's own accounting (weights + KV): both fit and 8B 8-bit ranks higher."""
    names = [(p.option.name, p.option.quant) for p in pick(vram, top=0, **extra).plans]
    assert names.index(("Qwen3-8B", "Q8_0")) < names.index(("Qwen3-14B", "Q4_K_M")), vram


def test_small_model_gains_nothing_from_16_bit_weights() -> None:
    """Issue #10, paper rule 3: below E1, Qwen3-1.7B BF16 (E 3.21 GiB) ranks by its 8-bit size, so it
    neither beats Qwen3-4B at 6 bits nor its own Q8_0 (which leaves more tokens)."""
    result = pick("3.5G", top=0, **PAPER)
    names = [(p.option.name, p.option.quant) for p in result.plans]
    assert names[0] == ("Qwen3-4B", "Q6_K")
    assert names.index(("Qwen3-1.7B", "Q8_0")) < names.index(("Qwen3-1.7B", "BF16"))
    assert any("Qwen3-1.7B BF16" in r and "8-bit size" in r for r in result.plans[0].reasons)
    # the setting: without the cap, bytes decide as before
    raw = pick("3.5G", top=1, cap_precision=False, **PAPER)
    assert top_of(raw) == ("Qwen3-1.7B", "BF16")


def test_16_bit_below_e1_says_it_counts_as_8_bit() -> None:
    result = pick("3.5G", top=1, models=["Qwen3-1.7B"], quants=["BF16"], **PAPER)
    assert any("BF16 weights count as 8-bit" in r for r in result.plans[0].reasons)


CARDS = ["4G", "6G", "8G", "12G", "16G", "24G", "32G", "48G", "80G"]
TASKS = ["math", "code", "knowledge"]


@pytest.fixture(scope="module")
def grid() -> dict[tuple[str, str], PickResult]:
    return {(v, t): pick(v, t, top=0) for v in CARDS for t in TASKS}


@pytest.mark.parametrize("vram", CARDS)
@pytest.mark.parametrize("task", TASKS)
def test_invariants(grid: dict[tuple[str, str], PickResult], vram: str, task: str) -> None:
    result = grid[(vram, task)]
    vram_bytes = parse_size(vram)
    assert result.budget.vram_bytes == vram_bytes and result.plans
    for p in result.plans:
        fp = p.footprint
        assert fp.gpu_total <= vram_bytes, p
        assert fp.gpu_total == fp.weights_gpu + fp.kv + fp.compute + fp.overhead + fp.margin
        assert p.parallel == 1 or p.option.effective_bytes >= E1_BYTES, p  # rule 4
        assert p.n_gpu_layers == -1  # no offload without --allow-offload
    # one best plan per model + quant, sorted by the rule
    keys = [(p.option.name, p.option.quant) for p in result.plans]
    assert len(keys) == len(set(keys))
    assert [p.sort_key for p in result.plans] == sorted((p.sort_key for p in result.plans), reverse=True)


@pytest.mark.parametrize("vram", CARDS)
def test_q4_kv_only_when_needed_for_math(grid: dict[tuple[str, str], PickResult], vram: str) -> None:
    """Rule 5: 4-bit KV costs accuracy; never on top when an f16/q8_0 plan reaches the floor."""
    result = grid[(vram, "math")]
    floor = result.policy.token_floor
    assert floor == 4096
    if any(p.n_ctx_seq >= floor and KvType.Q4_0 not in (p.type_k, p.type_v) for p in result.plans):
        assert KvType.Q4_0 not in (result.plans[0].type_k, result.plans[0].type_v)


@pytest.mark.parametrize("vram", ["12G", "16G", "24G"])
def test_knowledge_picks_a_larger_4bit_model_than_math(grid: dict[tuple[str, str], PickResult], vram: str) -> None:
    know, math = grid[(vram, "knowledge")].plans[0], grid[(vram, "math")].plans[0]
    assert know.option.n_params > math.option.n_params
    assert know.option.bits_class in (0, 1)  # 4- or 5-bit
    assert math.option.bits_class == 3  # 8/16-bit


@pytest.mark.parametrize("vram", CARDS)
def test_uniform_4bit_baseline(grid: dict[tuple[str, str], PickResult], vram: str) -> None:
    result = grid[(vram, "math")]
    base = result.baseline
    assert base is not None
    assert base.option.quant == "Q4_K_M" and base.type_k == base.type_v == KvType.F16
    assert base.parallel == 1 and base.n_gpu_layers == -1
    # the largest Q4_K_M model that has any f16-KV plan on this card
    options = catalog.options_from_catalog(catalog.select(catalog.load_catalog(), family="qwen3"), quants=["Q4_K_M"])
    f16_only = policy.Policy(kv_types=(KvType.F16,), max_parallel=1)
    fitting = policy.enumerate_plans(options, result.budget, f16_only)
    assert base.option.n_params == max(p.option.n_params for p in fitting)


def test_nothing_fits() -> None:
    with pytest.raises(NoFeasiblePlan) as e:
        pick("1G")
    err = e.value
    assert err.have_bytes == parse_size("1G") and err.need_bytes > err.have_bytes
    assert "short" in str(err) and "1.00 GiB" in str(err) and "Qwen3-0.6B" in str(err)
    short_mib = (err.need_bytes - err.have_bytes) / 2**20
    assert f"{short_mib:.2f} MiB short" in str(err)


def test_allow_offload_at_4g() -> None:
    result = pick("4G", top=0, allow_offload=True)
    offloaded = [p for p in result.plans if p.n_gpu_layers >= 0]
    assert offloaded
    for p in offloaded:
        assert 0 < p.n_gpu_layers <= p.option.spec.n_layer
        assert p.offload_slowdown > 1
        assert any("partial offload" in r and "slower" in r for r in p.reasons), p.reasons
        assert p.footprint.gpu_total <= parse_size("4G")
        assert p.footprint.weights_host > 0
    assert not any("partial offload" in r for p in result.plans if p.n_gpu_layers < 0 for r in p.reasons)


@pytest.mark.parametrize("task", TASKS)
def test_min_ctx_respected(task: str) -> None:
    result = pick("8G", task, top=0, min_ctx_tokens=32768)
    assert result.plans and all(p.n_ctx_seq >= 32768 for p in result.plans)
    assert pick("8G", task, top=0).plans[0].n_ctx_seq >= 4096


def test_top_limits_the_ranking(grid: dict[tuple[str, str], PickResult]) -> None:
    full = grid[("24G", "math")].plans
    five = pick("24G", top=5).plans
    assert [(p.option.name, p.option.quant) for p in five] == [(p.option.name, p.option.quant) for p in full[:5]]


def _names(plans: list[Plan]) -> set[str]:
    return {p.option.name for p in plans}


def test_family_filter() -> None:
    assert _names(pick("24G", top=0).plans) <= {m.name for m in catalog.load_catalog() if m.family == "qwen3"}
    assert _names(pick("24G", top=0, models=["Qwen3-8B"]).plans) == {"Qwen3-8B"}
