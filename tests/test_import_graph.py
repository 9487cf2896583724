"""edgekv's import graph has no cycles (the ``no-cycles`` contract in pyproject, run by lint-imports in
CI and by tests/cli/test_pick_cli.py), and that contract does catch one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(cwd: Path, *, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [lint, "--contract", "no-cycles", "--no-cache", "--no-logo"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_edgekv_has_no_import_cycles() -> None:
    proc = _lint(ROOT, pythonpath=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No import cycles in edgekv KEPT" in proc.stdout


def test_a_cycle_breaks_the_contract(tmp_path: Path) -> None:
    """A copy of edgekv where the sampler imports the engine that imports it: the check fails and
    names the import to remove (a TYPE_CHECKING import counts as well)."""
    shutil.copytree(ROOT / "edgekv", tmp_path / "edgekv", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    sampling = tmp_path / "edgekv" / "llama" / "sampling.py"
    text = sampling.read_text()
    head = "from __future__ import annotations\n"
    sampling.write_text(text.replace(head, head + "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                     "    from edgekv.llama.batch import Engine\n", 1))  # fmt: skip
    proc = _lint(tmp_path, pythonpath=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No cycles are allowed in edgekv.llama." in proc.stdout
    assert "- .sampling -> .batch (1 import)" in proc.stdout
