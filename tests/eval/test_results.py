"""edgekv.eval.results: one reader for eval's JSONL and one torn-line rule, for resume and for scores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edgekv.errors import SpecError
from edgekv.eval import results, scores
from tests.resultgen import Cfg, lines

CFG = Cfg("A", "Q8_0", 1.0, 0, 2048, 1)


def write_rows(path: Path, rows: list[dict[str, object]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


def resume_ids(path: Path) -> list[str]:
    return list(results.read_results(path, config_id=CFG.config_id).problems)


def score_ids(path: Path) -> list[str]:
    return sorted(scores.read_results([path], include_partial=True)[0].problems)


READERS: list[Callable[[Path], list[str]]] = [resume_ids, score_ids]


@pytest.mark.parametrize("read", READERS)
def test_a_torn_last_line_is_dropped(tmp_path: Path, read: Callable[[Path], list[str]]) -> None:
    rows = lines(CFG, lambda c, k: 0.5, n=3, summary=False)
    torn = json.dumps(lines(CFG, lambda c, k: 0.5, n=4, summary=False)[3])[:40]  # killed mid-write
    path = write_rows(tmp_path / "r.jsonl", rows, tail=torn)
    assert read(path) == ["p000", "p001", "p002"]


@pytest.mark.parametrize("read", READERS)
def test_a_damaged_whole_line_names_file_and_line(tmp_path: Path, read: Callable[[Path], list[str]]) -> None:
    rows = lines(CFG, lambda c, k: 0.5, n=3, summary=False)
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n" + '{"schema": 1, "type": "prob\n' + json.dumps(rows[2]) + "\n")
    with pytest.raises(SpecError, match=r"r\.jsonl:2 is not JSON .*not a torn last line") as e:
        read(path)
    assert "The file is damaged: remove that line" in str(e.value) and "--out" not in str(e.value)


@pytest.mark.parametrize("read", READERS)
def test_another_schema_is_refused(tmp_path: Path, read: Callable[[Path], list[str]]) -> None:
    rows = lines(CFG, lambda c, k: 0.5, n=2, summary=False)
    path = write_rows(tmp_path / "r.jsonl", [rows[0], {**rows[1], "schema": 2}])
    with pytest.raises(SpecError, match=r"r\.jsonl:2 has results schema 2; edgekv reads 1"):
        read(path)


def test_append_after_a_kill_cuts_the_torn_line_and_rewrites_it(tmp_path: Path) -> None:
    rows = lines(CFG, lambda c, k: 0.5, n=3)
    path = write_rows(tmp_path / "r.jsonl", rows[:1], tail=json.dumps(rows[1])[:25])
    assert not results.summary_written(path)
    with results.open_for_append(path) as fh:
        for row in rows[1:]:
            results.append_line(fh, row)
    text = path.read_text()
    assert text.endswith("\n") and [json.loads(x) for x in text.splitlines()] == rows
    assert results.summary_written(path)
    assert not results.summary_written(tmp_path / "missing.jsonl")
