"""Capacity from published scores (edgekv.plan.capacity): the expected sizes are worked out here by
hand from the cited tables (Qwen3 Technical Report arXiv:2505.09388 tables 13/15/17/19; gpt-oss model
card arXiv:2508.10925 Table 3) and the catalog's parameter counts, not by the code under test."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from edgekv.errors import SpecError
from edgekv.plan.capacity import Reference, Score, curve, equivalent_params, parse_scores
from edgekv.plan.plans import Policy, sizes
from edgekv.store.catalog import load_catalog, models_dir, options_from_catalog, references

# parameter counts of the catalog entries (models/*.json n_params)
N14, N32 = 14_768_307_200, 32_762_123_264


def _between(lo_n: int, hi_n: int, lo_v: float, hi_v: float, v: float) -> float:
    """Piecewise linear in log(params), by hand: lo * (hi/lo) ** ((v - lo_v) / (hi_v - lo_v))."""
    return lo_n * (hi_n / lo_n) ** ((v - lo_v) / (hi_v - lo_v))


def test_qwen3_30b_a3b_reads_as_a_20b_dense_qwen3() -> None:
    cat = {m.name: m for m in load_catalog()}
    cap = cat["Qwen3-30B-A3B"].capacity(references(cat.values()))
    assert cap is not None
    # Table 15: AIME'24 80.4 lies between Qwen3-14B's 79.3 (T15) and Qwen3-32B's 81.4 (T13)
    aime24 = _between(N14, N32, 79.3, 81.4, 80.4)  # 22.42e9
    # AIME'25 70.9 between 70.4 (T15) and 72.9 (T13)
    aime25 = _between(N14, N32, 70.4, 72.9, 70.9)  # 17.32e9
    assert [r.benchmark for r in cap.readings] == ["AIME24", "AIME25"]  # MATH-500 is saturated: not read
    assert cap.readings[0].n_params == pytest.approx(aime24, abs=1)
    assert cap.readings[1].n_params == pytest.approx(aime25, abs=1)
    assert cap.n_params == pytest.approx(math.sqrt(aime24 * aime25), abs=2)
    assert 19.70e9 < cap.n_params < 19.71e9


def test_gpt_oss_20b_at_medium_effort() -> None:
    cat = {m.name: m for m in load_catalog()}
    cap = cat["gpt-oss-20b"].capacity(references(cat.values()))
    assert cap is not None
    aime24 = _between(N14, N32, 79.3, 81.4, 80.0)  # medium effort, no tools: 80.0
    aime25 = _between(N14, N32, 70.4, 72.9, 72.1)  # 72.1
    assert cap.n_params == pytest.approx(math.sqrt(aime24 * aime25), abs=2)
    assert 22.1e9 < cap.n_params < 22.2e9


def test_dense_qwen3_models_read_back_their_own_size() -> None:
    cat = load_catalog()
    refs = references(cat)
    assert sorted(r.name for r in refs) == sorted(
        ["Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B", "Qwen3-14B", "Qwen3-32B"]
    )
    for m in cat:
        if m.name in {r.name for r in refs}:
            cap = m.capacity(refs)
            assert cap is not None and cap.n_params == m.n_params, m.name


def test_math500_is_not_a_curve_and_clamping_is_said() -> None:
    refs = references(load_catalog())
    assert curve(refs, "MATH-500") == []  # 97.4 at 8B, 96.8 at 14B: not rising
    high = equivalent_params([Score("AIME24", "x", 95.0, "s")], refs)
    low = equivalent_params([Score("AIME25", "x", 1.0, "s")], refs)
    assert high is not None and high.n_params == N32 and high.readings[0].clamped == "above"
    assert low is not None and low.n_params == 596_049_920 and low.readings[0].clamped == "below"
    assert equivalent_params([Score("GPQA", "x", 50.0, "s")], refs) is None  # no curve for it


def test_capacity_scales_e_and_size_turns_it_off() -> None:
    cat = load_catalog()
    dense = [m for m in cat if m.name == "Qwen3-8B"]
    base = next(o for o in options_from_catalog(dense, refs=references(cat)) if o.quant == "Q4_K_M")
    assert base.capacity_params == base.n_params  # a reference point reads back its own size
    assert sizes(base, Policy()) == sizes(base, Policy(capacity="size"))
    opt = replace(base, capacity_params=base.n_params // 2)  # as if its scores read as half its size
    assert sizes(opt, Policy(capacity="size")) == (opt.effective_bytes, opt.effective_bytes)
    half = round(opt.effective_bytes * (base.n_params // 2) / base.n_params)
    assert sizes(opt, Policy()) == (half, half)
    assert opt.rule_params(Policy()) == base.n_params // 2 and opt.rule_params(Policy(capacity="size")) == opt.n_params


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        ("AIME24", "must be a list"),
        ([{"benchmark": "AIME24", "mode": "thinking", "value": 180, "source": "T"}], "from 0 to 100"),
        ([{"benchmark": "AIME24", "mode": "thinking", "value": "80", "source": "T"}], "from 0 to 100"),
        ([{"benchmark": "AIME24", "mode": "thinking", "value": 80}], "'source'"),
        ([{"benchmark": "", "mode": "thinking", "value": 80, "source": "T"}], "'benchmark'"),
        ([{"benchmark": "AIME24", "mode": "t", "value": 80, "source": "T", "table": 3}], "unknown score field"),
        ([{"benchmark": "A", "mode": "t", "value": 1, "source": "T"}] * 2, "two scores for A"),
    ],
)
def test_bad_scores_are_refused(raw: object, msg: str) -> None:
    with pytest.raises(SpecError, match=msg):
        parse_scores(raw, "here")


def test_a_catalog_file_with_bad_scores_is_refused_by_name(tmp_path: Path) -> None:
    data = json.loads((Path(models_dir()) / "qwen3-8b.json").read_text())
    data["scores"][0]["value"] = -3
    (tmp_path / "qwen3-8b.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"qwen3-8b\.json.*from 0 to 100"):
        load_catalog(tmp_path)


def test_reference_needs_rising_points() -> None:
    refs = [
        Reference("a", 1_000, (Score("B", "thinking", 10.0, "s"),)),
        Reference("b", 8_000, (Score("B", "thinking", 40.0, "s"),)),
    ]
    cap = equivalent_params([Score("B", "m", 25.0, "s")], refs)
    assert cap is not None and cap.n_params == round(1_000 * 8**0.5)  # halfway in log size: 2,828
