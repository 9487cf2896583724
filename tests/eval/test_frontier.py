"""edgekv.eval.scores / frontier on constructed result sets (tests/resultgen.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekv.errors import SpecError
from edgekv.eval.frontier import Accounting, PickMark, derived_samples, frontier, pareto, point_scores, points
from edgekv.eval.results import summary_written
from edgekv.eval.scores import read_results
from tests.resultgen import GIB, KIB, Cfg, scale_rule_accuracy, scale_rule_results, write

# The paper-accounting frontier of tests/resultgen.py, worked out by hand there.
EXPECTED = [("A", 2048, 1), ("B", 2048, 1), ("C", 2048, 1), ("D", 2048, 1), ("D", 4096, 1), ("D", 8192, 1),
            ("D", 8192, 4), ("E", 8192, 4)]  # fmt: skip


def test_frontier_matches_hand_worked_one(tmp_path: Path) -> None:
    results = read_results([scale_rule_results(tmp_path / "r.jsonl")])
    assert len(results) == 20
    f = frontier(results)
    got = [(p.model.split("-")[0], p.budget_tokens, p.samples) for p in f.paper]
    assert got == EXPECTED
    assert [round(p.accuracy, 3) for p in f.paper] == [0.1, 0.2, 0.3, 0.45, 0.55, 0.65, 0.75, 0.8]
    # the runtime accounting adds the same 1 GiB to every point: the same frontier
    assert [p.config_id for p in f.runtime] == [p.config_id for p in f.paper]
    assert f.runtime[0].runtime_bytes == f.paper[0].paper_bytes + GIB
    assert f.dataset == "synth" and f.n_problems == 40


def test_g4_run_yields_g1_and_g2_points_with_scaled_kv(tmp_path: Path) -> None:
    cfg = Cfg("D", "Q8_0", 4.2, 144 * KIB, 8192, 4)
    results = read_results([write(tmp_path / "r.jsonl", [cfg], scale_rule_accuracy)])
    pts = {p.samples: p for p in points(point_scores(results))}
    assert sorted(pts) == [1, 2, 4] == list(derived_samples(4))
    assert pts[1].derived and not pts[4].derived
    assert pts[4].kv_bytes == 144 * KIB * 8192 * 4
    assert pts[1].kv_bytes == 144 * KIB * 8192
    assert pts[1].paper_bytes == round(4.2 * GIB) + 144 * KIB * 8192
    assert pts[1].accuracy == pytest.approx(0.65)  # pass@1 over the 4 samples
    assert pts[4].accuracy == pytest.approx(0.75)  # maj@4
    assert pts[4].label == "8k x4" and pts[1].label == "8k"
    assert derived_samples(16) == (1, 2, 4, 8, 16) and derived_samples(6) == (1, 2, 4, 6)


def test_pareto_strictly_better_and_ties(tmp_path: Path) -> None:
    cfgs = [Cfg("A", "Q8_0", 1.0, 0, 2048, 1), Cfg("B", "Q8_0", 1.0, 0, 4096, 1), Cfg("C", "Q8_0", 2.0, 0, 2048, 1)]
    acc = {"A": 0.5, "B": 0.6, "C": 0.6}
    results = read_results([write(tmp_path / "r.jsonl", cfgs, lambda c, k: acc[c.model])])
    front = pareto(points(point_scores(results)), Accounting.PAPER)
    # A and B weigh the same: B (more accurate) wins; C, more memory and no better, is off
    assert [p.model for p in front] == ["B-Q8_0.gguf"]


def test_unfinished_configs_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write(path, [Cfg("A", "Q8_0", 1.0, 0, 2048, 1)], lambda c, k: 0.5)
    write(path, [Cfg("B", "Q8_0", 2.0, 0, 2048, 1)], lambda c, k: 0.5, summary=False)
    with path.open("a") as fh:
        fh.write('{"schema": 1, "type": "prob')  # a killed writer's torn line
    assert [r.info.model for r in read_results([path])] == ["A-Q8_0.gguf"]
    assert len(read_results([path], include_partial=True)) == 2
    assert summary_written(path)
    assert not summary_written(tmp_path / "missing.jsonl")


def test_results_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no results at"):
        read_results([tmp_path / "nope.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"schema": 2, "type": "problem"}) + "\n")
    with pytest.raises(SpecError, match="schema 2"):
        read_results([bad])
    bad.write_text(json.dumps({"schema": 1, "type": "problem", "config_id": "x"}) + "\n")
    with pytest.raises(SpecError, match="not an eval result line"):
        read_results([bad])


def test_folder_of_results_and_pick_marks(tmp_path: Path) -> None:
    scale_rule_results(tmp_path / "out" / "results" / "a.jsonl")
    (tmp_path / "out" / "sweep.json").write_text("{}")  # not a results file: ignored
    mark = PickMark(8 * GIB, "D-Q8_0.gguf", "Q8_0", "f16", "f16", 8192, 4)
    f = frontier(read_results([tmp_path / "out"]), picks=[mark])
    picked = [p for p in f.points if f.picked(p)]
    assert [(p.budget_tokens, p.samples) for p in picked] == [(8192, 4)]
