"""edgekv.eval.calibrate on constructed result sets whose thresholds are known by hand (tests/resultgen.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekv.eval.calibrate import calibrate, fit_e1, fit_saturation
from edgekv.eval.frontier import Accounting, pareto, point_scores, points
from edgekv.eval.scores import read_results
from tests.resultgen import BUDGETS, GIB, KIB, Cfg, scale_rule_accuracy, scale_rule_results, write


def _cal(path: Path, **kw: object):  # type: ignore[no-untyped-def]
    return calibrate(read_results([path]), n_bootstrap=kw.pop("n_bootstrap", 50), **kw)  # type: ignore[arg-type]


def test_e1_saturation_and_parallel_found(tmp_path: Path) -> None:
    cal = _cal(scale_rule_results(tmp_path / "r.jsonl"))
    e1 = cal.e1_bytes
    assert e1.kind == "estimate"
    assert e1.value is not None and round(2.3 * GIB) < e1.value <= round(4.2 * GIB)  # the bucket (C, D]
    assert e1.value == round(4.2 * GIB)
    assert e1.low is not None and e1.high is not None and e1.low <= e1.value <= e1.high
    assert cal.saturation_tokens.value == 8192 and cal.saturation_tokens.kind == "estimate"
    g = cal.parallel_min_bytes[Accounting.PAPER]
    assert g.kind == "estimate" and g.value == round(4.2 * GIB) + 144 * KIB * 8192 * 4  # D 8k x4
    assert cal.parallel_min_bytes[Accounting.RUNTIME].value == g.value + GIB
    assert cal.q4_weights.value is None and cal.q4_kv.value is None  # not measured
    assert cal.n_problems == 40 and cal.n_configs == 20 and cal.dataset == "synth"


def test_bootstrap_is_seeded(tmp_path: Path) -> None:
    path = scale_rule_results(tmp_path / "r.jsonl")
    a, b = _cal(path, seed=3), _cal(path, seed=3)
    assert a.e1_bytes == b.e1_bytes and a.saturation_tokens == b.saturation_tokens
    assert a.e1_bytes.n_bootstrap == 50 and 0 < a.e1_bytes.n_defined <= 50


def test_four_bit_weights_and_kv_reach_the_frontier(tmp_path: Path) -> None:
    extra = [Cfg("C", "Q4_K_M", 1.3, 144 * KIB, 2048, 1), Cfg("D", "Q8_0", 4.2, 40 * KIB, 2048, 1, kv="q4_0")]
    cal = _cal(scale_rule_results(tmp_path / "r.jsonl", extra=extra))
    assert cal.q4_weights.value is True and cal.q4_weights.share > 0.5
    assert cal.q4_kv.value is True
    assert cal.e1_bytes.value == round(4.2 * GIB)  # the structure is unchanged


def test_four_bit_measured_but_never_on_frontier(tmp_path: Path) -> None:
    # a 4-bit C bigger than the 8-bit one and less accurate: measured, never on the frontier
    extra = [Cfg("C", "Q4_K_M", 2.4, 144 * KIB, 2048, 1)]
    cal = _cal(scale_rule_results(tmp_path / "r.jsonl", extra=extra))
    assert cal.q4_weights.value is False and cal.q4_weights.share == 0.0


def test_a_useless_cheapest_config_is_not_on_the_frontier(tmp_path: Path) -> None:
    # the smallest configuration measured, with 4-bit KV, never right: it must not open the frontier
    path = scale_rule_results(tmp_path / "r.jsonl")
    write(path, [Cfg("Z", "Q8_0", 0.2, 20 * KIB, 2048, 1, kv="q4_0")], lambda c, k: 0.0)
    pts = points(point_scores(read_results([path])))
    assert min(pts, key=lambda p: p.paper_bytes).model == "Z-Q8_0.gguf"
    assert "Z-Q8_0.gguf" not in {p.model for p in pareto(pts, Accounting.PAPER)}
    cal = _cal(path)
    assert cal.q4_kv.value is False
    assert cal.e1_bytes.value == round(4.2 * GIB)


def test_tokens_never_pay_gives_lower_bound(tmp_path: Path) -> None:
    cfgs = [Cfg(m, "Q8_0", e, 112 * KIB, b, 1) for m, e in (("A", 0.6), ("B", 1.2), ("C", 2.3)) for b in BUDGETS]
    acc = {"A": 0.1, "B": 0.2, "C": 0.3}
    cal = _cal(write(tmp_path / "r.jsonl", cfgs, lambda c, k: acc[c.model]))
    assert cal.e1_bytes.kind == "at_least" and cal.e1_bytes.value == round(2.3 * GIB)
    assert cal.saturation_tokens.kind == "at_most" and cal.saturation_tokens.value == 2048
    assert cal.parallel_min_bytes[Accounting.PAPER].kind == "undetermined"


def test_parallel_never_pays_gives_lower_bound(tmp_path: Path) -> None:
    cfgs = [Cfg("D", "Q8_0", 4.2, 144 * KIB, b, 4) for b in BUDGETS]
    cal = _cal(write(tmp_path / "r.jsonl", cfgs, lambda c, k: scale_rule_accuracy(c, 1)))  # maj@4 = pass@1
    g = cal.parallel_min_bytes[Accounting.PAPER]
    assert g.kind == "at_least" and g.value == round(4.2 * GIB) + 144 * KIB * 16384 * 4


def test_saturation_still_growing_is_a_lower_bound(tmp_path: Path) -> None:
    cfgs = [Cfg("D", "Q8_0", 4.2, 144 * KIB, b, 1) for b in BUDGETS]
    pts = points(point_scores(read_results([write(tmp_path / "r.jsonl", cfgs, lambda c, k: c.budget / 20000)])))
    assert fit_saturation(pts, (None, "undetermined")) == (16384.0, "at_least")


def test_fit_e1_edge_cases() -> None:
    assert fit_e1([]) == (None, "undetermined")


@pytest.mark.parametrize("tolerance,expected", [(0.02, 8192), (0.2, 4096)])
def test_saturation_tolerance(tmp_path: Path, tolerance: float, expected: int) -> None:
    cal = _cal(scale_rule_results(tmp_path / "r.jsonl"), tolerance=tolerance, n_bootstrap=5)
    assert cal.saturation_tokens.value == expected


# --- the user's own Qwen3-equivalent sizes (a profile's "capacity", pick --profile) ---------------------

# Qwen3-1.7B, 4B and 8B measured at 20 / 40 / 60 % (8 / 16 / 24 of 40 problems), Phi-4-reasoning at 50 %;
# Phi-4-reasoning also at 4k (90 %), a budget the others lack, which must not count; a model outside the
# catalog is measured too and gets no size.
_MEASURED = {
    ("Qwen3-1.7B", 8192): 0.20, ("Qwen3-4B", 8192): 0.40, ("Qwen3-8B", 8192): 0.60,
    ("Phi-4-reasoning", 8192): 0.50, ("Phi-4-reasoning", 4096): 0.90, ("Not-In-Catalog", 8192): 0.55,
}  # fmt: skip


def _measured_sweep(path: Path) -> Path:
    cfgs = [Cfg(m, "Q8_0" if m != "Phi-4-reasoning" else "Q4_K_M", 4.0, 144 * KIB, b, 1) for m, b in _MEASURED]
    return write(path, cfgs, lambda c, k: _MEASURED[(c.model, c.budget)])


def test_measured_capacity_reads_the_sweeps_own_qwen3_curve(tmp_path: Path) -> None:
    from edgekv.eval.calibrate import measured_capacity
    from edgekv.store.catalog import load_all

    cap = measured_capacity(read_results([_measured_sweep(tmp_path / "r.jsonl")]), load_all().models)
    assert set(cap) == {"Phi-4-reasoning"}  # the curve's own models and the unknown one get none
    # 50 % is halfway between Qwen3-4B's 40 % and Qwen3-8B's 60 %: halfway in log(parameters), their
    # geometric mean (4,022,468,096 and 8,190,735,360 parameters: their config.json shapes)
    assert cap["Phi-4-reasoning"]["n_params"] == round((4_022_468_096 * 8_190_735_360) ** 0.5) == 5_739_945_267
    assert cap["Phi-4-reasoning"]["budget_tokens"] == 8192


def test_pick_with_a_profile_uses_the_measured_capacity(tmp_path: Path) -> None:
    """calibrate writes the measured sizes into the profile; pick --profile ranks by them and says so."""
    import json

    from click.testing import CliRunner

    from edgekv.cli import cli

    path = _measured_sweep(tmp_path / "r.jsonl")
    res = CliRunner().invoke(cli, ["calibrate", str(path), "--name", "mine", "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["capacity"]["Phi-4-reasoning"]["n_params"] == 5_739_945_267
    args = ["pick", "--vram", "16G", "--model", "Phi-4-reasoning", "--top", "1"]
    mine = " ".join(CliRunner().invoke(cli, [*args, "--profile", "mine"]).output.split())
    assert "Phi-4-reasoning 14.7B ranks as a Qwen3-5.7B on your measurements measured@8192 50" in mine
    published = " ".join(CliRunner().invoke(cli, args).output.split())
    assert "ranks as a Qwen3-6.5B on published AIME24 75.3" in published  # the model card's score
