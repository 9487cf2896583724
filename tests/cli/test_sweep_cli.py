"""``edgekv sweep --dry-run``, ``frontier`` (table, --png, matplotlib missing), ``calibrate`` and ``pick --profile``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli
from edgekv.errors import ModelFileNotFound, OutputExists
from tests.resultgen import KIB, Cfg, scale_rule_results

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output, result.exception


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return scale_rule_results(tmp_path / "r.jsonl", extra=[Cfg("C", "Q4_K_M", 1.3, 144 * KIB, 2048, 1)])


def test_frontier_table(results: Path) -> None:
    code, out, exc = invoke("frontier", str(results))
    assert code == 0, exc
    assert "accuracy vs memory: synth, 40 problems, 37 points" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("A-", "B-", "C-", "D-", "E-"))]
    assert [r[0] for r in rows] == [
        "A-Q8_0.gguf", "B-Q8_0.gguf", "C-Q4_K_M.gguf", "C-Q8_0.gguf", "D-Q8_0.gguf", "D-Q8_0.gguf", "D-Q8_0.gguf",
        "D-Q8_0.gguf", "E-Q8_0.gguf",
    ]  # fmt: skip
    assert all("paper+edgekv" in r for r in rows)
    code, out, _ = invoke("frontier", str(results), "--json")
    data = json.loads(out)
    assert len(data["points"]) == 37 and sum(p["on_paper_frontier"] for p in data["points"]) == 9


def test_frontier_png(results: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    code, _out, exc = invoke("frontier", str(results), "--png", str(png))
    assert code == 0, exc
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_frontier_png_without_matplotlib(results: Path, tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from edgekv.cli import main\n"
        f"main(['frontier', {str(results)!r}, '--png', {str(png)!r}])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert "error: matplotlib is needed to draw the frontier (--png)" in proc.stderr
    assert "Install it with pip install 'edgekv[plot]'" in proc.stderr and "Traceback" not in proc.stderr
    assert "accuracy vs memory" in proc.stdout  # the table still comes first
    assert not png.exists()


def test_calibrate_writes_profile_and_pick_uses_it(results: Path) -> None:
    code, out, exc = invoke("calibrate", str(results), "--name", "mine", "--bootstrap", "20")
    assert code == 0, exc
    path = Path(os.environ["EDGEKV_HOME"]) / "profiles" / "mine.json"
    assert f"Profile written: {path}" in out.replace("\n", "")
    prof = json.loads(path.read_text())
    assert prof["policy"]["e1_bytes"] == round(4.2 * 1024**3) and prof["policy"]["saturation_tokens"] == 8192
    assert prof["policy"]["flat_precision"] is True and prof["constants"]["e1_bytes"]["kind"] == "estimate"
    assert not list(path.parent.glob("*.incomplete"))
    code, _out, exc = invoke("calibrate", str(results), "--name", "mine")
    assert code == 1 and isinstance(exc, OutputExists)

    code, out, exc = invoke("pick", "--vram", "8G", "--profile", "mine")
    assert code == 0, exc
    assert "Profile mine:" in out
    assert "e1_bytes = 4.20 GiB from the profile (paper default 4.19 GiB; fitted on 40 problems, 95% interval" in out
    assert "saturation_tokens = 8192 tokens from the profile (paper default 32768 tokens; fitted on 40" in out
    assert "q4_kv_ok = False: the paper's default" in out
    assert "#1 with the profile:" in out

    code, out, exc = invoke("pick", "--vram", "8G", "--profile", "mine", "--e1", "3G", "--json")
    assert code == 0, exc
    applied = {a["field"]: a for a in json.loads(out)["profile"]["applied"]}
    assert applied["e1_bytes"]["source"] == "flag" and applied["saturation_tokens"]["source"] == "profile"


def test_calibrate_default_name_is_dataset(results: Path) -> None:
    code, _out, exc = invoke("calibrate", str(results), "--bootstrap", "0", "--json")
    assert code == 0, exc
    assert (Path(os.environ["EDGEKV_HOME"]) / "profiles" / "synth.json").is_file()


def test_pick_unknown_profile_exits_1() -> None:
    code, _out, exc = invoke("pick", "--vram", "8G", "--profile", "nope")
    assert code == 1 and isinstance(exc, ModelFileNotFound) and "edgekv calibrate" in str(exc)


def test_sweep_dry_run(tmp_path: Path) -> None:
    args = ["sweep", "--vram", "4G,8G", "--dataset", "aime25", "--limit", "5", "--models", "Qwen3-0.6B,Qwen3-4B",
            "--quants", "Q8_0", "--kv", "q8_0", "--budgets", "2k,8k", "--out", str(tmp_path / "o"),
            "--dry-run"]  # fmt: skip
    code, out, exc = invoke(*args)
    assert code == 0, exc
    assert "edgekv sweep:" in out and "Qwen_Qwen3-0.6B-Q8_0.gguf" in out
    code, out, exc = invoke(*args, "--json")
    data = json.loads(out)
    assert data["settings"]["budgets"] == [2048, 8192] and data["cards"] == [4 * 1024**3, 8 * 1024**3]
    assert {i["status"] for i in data["items"]} == {"pending"} and [p["vram_bytes"] for p in data["picks"]]
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_sweep_missing_models_exit_1(tmp_path: Path) -> None:
    code, _out, exc = invoke("sweep", "--vram", "4G", "--dataset", "aime25", "--models", "Qwen3-0.6B", "--quants",
                             "Q8_0", "--budgets", "2k", "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 1 and isinstance(exc, ModelFileNotFound) and "--download" in str(exc)
