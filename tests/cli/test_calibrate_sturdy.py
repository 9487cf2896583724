"""Issue #28: calibrate flags a fit too weak to act on (and pick then keeps the paper's value), says
how many problems would do; pick --profile says when the profile moved its choice and on what evidence."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from edgekv.eval.calibrate import Estimate
from edgekv.plan.plans import E1_BYTES, SATURATION_TOKENS
from tests.cli.conftest import main_ok
from tests.resultgen import GIB, scale_rule_accuracy, scale_rule_configs, scale_rule_results, write


def test_a_three_problem_sweep_moves_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """calibrate wrote a profile from a 3-problem sweep with no warning, and pick --profile then changed
    its top plan. Now each fit that would have moved pick is named, with the problems it would take,
    and the profile keeps the paper's constants."""
    results = write(tmp_path / "sweep" / "r.jsonl", scale_rule_configs(), scale_rule_accuracy, n=3)
    out, err = main_ok(capsys, "calibrate", results.parent, "--name", "three", "--json")
    prof = json.loads(out)
    assert prof["policy"]["e1_bytes"] == E1_BYTES and prof["policy"]["saturation_tokens"] == SATURATION_TOKENS
    assert prof["policy"]["parallel_min_bytes"] == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert any(w.startswith("warning: E1 = ") for w in warnings), err
    assert any(w.startswith("warning: token saturation = 4096 tokens is too weak") for w in warnings), err
    for w in warnings:  # 3 problems have C(5, 3) = 10 distinct resamples
        assert "fitted on 3 problems (10 distinct resamples; the rule needs 30)" in w
        needed = int(w.split("About ")[1].split()[0])
        assert needed >= 30 and "(this sweep has 3)" in w
    e1 = prof["constants"]["e1_bytes"]
    assert e1["actionable"] is False and e1["problems_needed"] >= 30

    plain, _ = main_ok(capsys, "pick", "--vram", "12G")
    with_profile, _ = main_ok(capsys, "pick", "--vram", "12G", "--profile", "three")
    top = next(ln for ln in plain.splitlines() if ln.lstrip().startswith("1 "))
    assert top in with_profile.splitlines()  # the same #1
    assert "(the same as with the paper's defaults)" in with_profile
    assert "The profile moved #1" not in with_profile
    assert with_profile.count("not used: ") == len(warnings)


def test_a_forty_problem_sweep_moves_pick_and_says_on_what(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    results = scale_rule_results(tmp_path / "sweep" / "r.jsonl")
    _out, err = main_ok(capsys, "calibrate", results.parent, "--name", "forty")
    assert "warning" not in err
    out, _ = main_ok(capsys, "pick", "--vram", "12G", "--profile", "forty")
    assert "saturation_tokens = 8192 tokens from the profile (paper default 32768 tokens; fitted on 40 problems, " \
           "95% interval 8192 tokens .. 8192 tokens, in 200 of 200 resamples)" in out  # fmt: skip
    assert "The profile moved #1, on the evidence of 40 problems (e1_bytes, saturation_tokens" in out
    data = json.loads(main_ok(capsys, "pick", "--vram", "12G", "--profile", "forty", "--json")[0])["profile"]
    assert data["moved_top_plan"] is True and data["n_problems"] == 40 and data["not_used"] == []


def test_wide_interval_names_its_spread_and_the_problems_it_needs() -> None:
    """An E1 between 1 and 8 GiB on 40 problems spans 8x; to bring it to 2x, (ln 8 / ln 2)^2 = 9 times the
    problems: 360."""
    from edgekv.eval.calibrate import judge

    wide = Estimate(4 * GIB, "estimate", 1 * GIB, 8 * GIB, 200, 200)
    v = judge(wide, 40)
    assert not v.actionable and v.problems_needed == 360
    assert v.reason == "its 95% interval spans 8.0x (the rule allows 2x)"
    assert judge(wide, 40, max_spread=8.0).actionable
    narrow = Estimate(4 * GIB, "estimate", 3.5 * GIB, 4.5 * GIB, 200, 200)
    assert judge(narrow, 40).actionable


def test_unstable_or_tiny_fits_are_not_acted_on() -> None:
    from edgekv.eval.calibrate import judge

    shaky = Estimate(4 * GIB, "estimate", 3.9 * GIB, 4.1 * GIB, 120, 200)  # held in 60% of resamples
    v = judge(shaky, 50)
    assert not v.actionable and "held in only 120 of 200 resamples" in v.reason
    assert v.problems_needed == math.ceil(50 * (0.4 / 0.1) ** 2)  # 800
    tiny = Estimate(4 * GIB, "estimate", 4 * GIB, 4 * GIB, 200, 200)
    v = judge(tiny, 5)
    assert not v.actionable and "fitted on 5 problems (126 distinct resamples" in v.reason  # C(9, 5) = 126
    assert v.problems_needed == 30
