"""The eval core stays light: importing it pulls in neither huggingface_hub nor llama_cpp (nor math-verify,
which runs in its own worker process)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_eval_modules_import_light() -> None:
    code = (
        "import sys, json\n"
        "import edgekv.eval.answers, edgekv.eval.equivalence, edgekv.eval.metrics, edgekv.eval.datasets\n"
        "import edgekv.eval.synth\n"
        "heavy = ('huggingface_hub', 'llama_cpp', 'math_verify', 'sympy', 'pyarrow')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(out.stdout) == [], out.stderr


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_hub_datasets_module_imports_huggingface_hub() -> None:
    for path in (ROOT / "edgekv" / "eval").glob("*.py"):
        assert not imported(path) & {"huggingface_hub", "llama_cpp"}, path
    assert "huggingface_hub" in imported(ROOT / "edgekv" / "hub" / "datasets.py")
