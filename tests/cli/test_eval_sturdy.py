"""Issue #28, ``edgekv eval``: progress a user can see (a bar on a terminal, plain lines otherwise),
and where the results are kept (a default file under the user's data folder, named at start and end,
resumed by the next run)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import main_ok

pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]


def test_data_dir_is_xdg_data_home_or_edgekv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekv.settings import data_dir

    monkeypatch.delenv("EDGEKV_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "edgekv"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "edgekv"
    monkeypatch.setenv("EDGEKV_HOME", str(tmp_path / "eh"))
    assert data_dir() == tmp_path / "eh"


def test_eval_without_out_keeps_results_in_the_data_folder_and_resumes(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    """eval without --out kept nothing: a killed or finished run could not be resumed or compared."""
    expected = Path(os.environ["EDGEKV_HOME"]) / "results" / "tiny-qwen3-F16--synth.jsonl"
    args = ["eval", tiny, "--dataset", "synth", "--limit", "3", "--budget", "4", "--samples", "1", "--threads", "1"]
    out, err = main_ok(capsys, *args)
    lines = err.splitlines()
    assert f"eval: results go to {expected}" in lines[:3], err
    assert lines[-1] == f"eval: results kept in {expected} (3 problems; a rerun resumes it)", err
    kinds = [json.loads(x)["type"] for x in expected.read_text().splitlines()]
    assert kinds == ["problem", "problem", "problem", "summary"]
    out, err = main_ok(capsys, *args, "--limit", "4")  # one more problem: three come from the file
    assert "3 resumed" in out
    kinds = [json.loads(x)["type"] for x in expected.read_text().splitlines()]
    assert kinds == ["problem"] * 3 + ["summary", "problem", "summary"]


def test_eval_json_names_the_results_file(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    out, _err = main_ok(capsys, "eval", tiny, "--dataset", "synth", "--limit", "1", "--budget", "4", "--samples",
                          "1", "--threads", "1", "--json")  # fmt: skip
    assert json.loads(out)["out"] == str(Path(os.environ["EDGEKV_HOME"]) / "results" / "tiny-qwen3-F16--synth.jsonl")


def test_eval_progress_off_a_terminal_is_plain_lines(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """Off a terminal eval printed nothing for minutes: now a line at each tenth of the problems."""
    _out, err = main_ok(capsys, "eval", tiny, "--dataset", "synth", "--limit", "10", "--budget", "4", "--samples",
                          "1", "--threads", "1")  # fmt: skip
    progress = [ln for ln in err.splitlines() if re.match(r"eval: \d+/10 problems", ln)]
    assert [ln.split()[1] for ln in progress] == [f"{i}/10" for i in range(1, 11)], err
    assert all("pass@1" in ln and "tok/s" in ln for ln in progress)


def test_eval_quiet_prints_no_progress(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    _out, err = main_ok(capsys, "-q", "eval", tiny, "--dataset", "synth", "--limit", "3", "--budget", "4",
                          "--samples", "1", "--threads", "1")  # fmt: skip
    assert "problems" not in err and "results" not in err


def test_eval_on_a_terminal_draws_a_bar(tiny: Path, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: rich's bar (its ━ characters) and the results lines."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekv", "eval", str(tiny), "--dataset", "synth", "--limit", "4", "--budget", "4",
         "--samples", "1", "--threads", "1", "--out", str(tmp_path / "r.jsonl")],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = seen.decode("utf-8", "replace")
    assert "━" in text and "eval" in text
    assert f"results go to {tmp_path / 'r.jsonl'}" in text.replace("\r\n", "\n").replace("\n", "")
