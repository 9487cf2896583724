"""``edgekv eval`` through click's CliRunner on gemma-3-270m (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli
from edgekv.errors import DatasetError


def test_eval_json_and_results_file(gemma_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    args = ["eval", str(gemma_gguf), "--dataset", "synth", "--limit", "2", "--budget", "8", "--reserve", "4",
            "--samples", "2", "--temperature", "0", "--threads", "1", "--slots", "2",
            "--out", str(out), "--json"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["type"] == "summary" and data["config"]["budget_tokens"] == 8 and data["config"]["type_k"] == "q8_0"
    assert data["metrics"]["n_problems"] == 2 and len(data["metrics"]["maj_at_k"]) == 2
    assert [json.loads(x)["type"] for x in out.read_text().splitlines()] == ["problem", "problem", "summary"]
    table = CliRunner().invoke(cli, args[:-1])  # resumed: nothing to run, the table still prints
    assert table.exit_code == 0, table.output
    assert "maj@k" in table.stdout and "2 resumed" in table.stdout


def test_eval_needs_a_model() -> None:
    res = CliRunner().invoke(cli, ["eval", "--dataset", "synth"])
    assert res.exit_code != 0 and "MODEL.gguf or --plan" in res.output


def test_eval_field_flags_reach_the_file_and_its_errors_name_them(tmp_path: Path) -> None:
    """--question-field/--answer-field/--id-field pass to the loader: with the first two found, the
    missing id field is named, and so is the flag that picks it."""
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "1+1?", "solution": "2"}) + "\n")
    args = ["eval", "m.gguf", "--dataset", str(path), "--question-field", "prompt", "--answer-field", "solution"]
    res = CliRunner().invoke(cli, [*args, "--id-field", "key"])
    assert res.exit_code == 1 and isinstance(res.exception, DatasetError)
    assert (
        str(res.exception) == f"{path}:1: no field 'key' (fields: prompt, solution). Name the right one with --id-field"
    )
    res = CliRunner().invoke(cli, ["eval", "m.gguf", "--dataset", str(path)])
    assert "no field 'question' (fields: prompt, solution). Name the right one with --question-field" in str(
        res.exception
    )


def test_eval_think_markers_reach_the_results_and_a_bad_pair_is_refused(
    gemma_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--think-markers is recorded in the results' config (gemma's template names no [THINK], so it is
    not run as a thinking model); one marker alone is a usage error naming the form to give."""
    out = tmp_path / "r.jsonl"
    args = ["eval", str(gemma_gguf), "--dataset", "synth", "--limit", "1", "--budget", "8", "--reserve", "4",
            "--samples", "1", "--temperature", "0", "--threads", "1", "--slots", "1", "--out", str(out),
            "--json"]  # fmt: skip
    res = CliRunner().invoke(cli, [*args, "--think-markers", "[THINK],[/THINK]"])
    assert res.exit_code == 0, res.output
    config = json.loads(res.stdout)["config"]
    assert config["think_markers"] == ["[THINK]", "[/THINK]"] and config["thinking"] is False
    from edgekv.cli import main

    with pytest.raises(SystemExit) as e:
        main([*args, "--think-markers", "[THINK]"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "--think-markers '[THINK]': give the opening and the closing marker, OPEN,CLOSE" in err
