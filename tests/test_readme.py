"""The README stays true: its pick outputs are the real ones, and the library examples print what
docs/library.md shows."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ckptgen import write_qwen3_checkpoint
from tests.fakes.hub import FakeHub, make_gguf

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LIBRARY = (ROOT / "docs" / "library.md").read_text()


def test_quick_start_commands_are_the_two_ci_runs() -> None:
    """CI and users copy these two lines as they are."""
    blocks = re.findall(r"```bash\n(.*?)\n```", README[README.index("## Quick start") :], re.S)
    assert blocks[:2] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && edgekv pick --vram 8G",
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest -q',
    ]


def test_pick_outputs_are_current() -> None:
    """Every `edgekv pick` output in README.md and docs/picks.md is the command's output today."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_picks.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked 5 edgekv pick output(s)" in proc.stdout


def _examples() -> list[tuple[str, str]]:
    """(code, what it prints) for each ```python block of docs/library.md and the ```text block after it."""
    return re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", LIBRARY, re.S)


def _shown(expected: str) -> re.Pattern[str]:
    """The printed text a page shows, as a pattern: `...` is any text (as in doctest's ELLIPSIS)."""
    return re.compile(".*?".join(re.escape(part) for part in expected.strip().split("...")), re.S)


def test_library_page_has_the_five_examples() -> None:
    names = ["pick(", "read_spec(", "convert_checkpoint(", "download(", "run_prompt("]
    examples = _examples()
    assert len(examples) == 5 and [next(n for n in names if n in code) for code, _ in examples] == names


def test_library_pick_example_agrees_with_the_readmes_pick() -> None:
    """The library's best plan for 8G is the README's `edgekv pick --vram 8G` #1, with its first reason."""
    shown = _examples()[0][1].splitlines()
    block = README[README.index("### `edgekv pick --vram 8G --top 3`") :]
    row = re.search(r"^ 1 +(\S+) +(\S+)(?: cmoe\d+)? +[\d.]+ +(\S+) +(\d+) x (\d+) ", block, re.M)
    assert row is not None
    assert shown[0] == f"{row[1]} {row[2]} {row[3]} {row[4]} tokens x {row[5]}"
    why = block[block.index("Why #1") :].split("\n  - ")[1]
    assert shown[1] == " ".join(why.split())


@pytest.fixture
def workdir(tmp_path: Path, gemma_gguf: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples' folder; the fake hub (reset after the test: its repo does not reach other tests)
    serves the download example's repo."""
    (tmp_path / "model.gguf").symlink_to(gemma_gguf)
    write_qwen3_checkpoint(tmp_path / "my-checkpoint")
    (tmp_path / "src").mkdir()
    gguf = make_gguf(tmp_path / "src" / "Qwen_Qwen3-4B-Q4_K_M.gguf", quant="Q4_K_M", seed=4)[0]
    hub.add_repo("bartowski/Qwen_Qwen3-4B-GGUF", {gguf.name: gguf.read_bytes()})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _f16_bytes(safetensors: Path) -> int:
    """What an f16 GGUF of this checkpoint holds: 2 bytes a value of a matrix, 4 of a vector (norms stay F32)."""
    raw = safetensors.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    shapes = [t["shape"] for name, t in header.items() if name != "__metadata__"]
    return sum(math.prod(shape) * (2 if len(shape) == 2 else 4) for shape in shapes)


@pytest.mark.parametrize("index", range(5))
def test_library_example_prints_what_the_page_shows(index: int, workdir: Path) -> None:
    code, expected = _examples()[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"docs/library.md example {index + 1}", "exec"), {"__name__": "readme"})
    printed = out.getvalue().strip()
    assert _shown(expected).fullmatch(printed), f"the page shows:\n{expected}\nthe example printed:\n{printed}"
    if "read_spec(" in code:  # gemma-3-270m's config.json: 18 layers, 1 KV head of 256 dimensions
        # one layer in six attends globally (llama.cpp's gemma3 sliding-window pattern); the others keep only
        # the window, so a token costs K and V of the 3 global layers, at q8_0's 34 bytes per 32 values
        assert printed.splitlines()[1] == f"q8_0 KV bytes per token: {18 // 6 * 2 * 1 * 256 * 34 // 32}"
        assert printed.startswith("gemma3 18 layers, ")
    if "convert_checkpoint(" in code:  # F16 keeps each matrix at 2 bytes a value and each norm at 4 (F32)
        sizes = {line.split()[1]: int(line.split()[2]) for line in printed.splitlines()}
        assert sizes["F16"] == _f16_bytes(workdir / "my-checkpoint" / "model.safetensors")
        assert sizes["F16"] > sizes["Q8_0"] > sizes["Q4_K_M"]
        assert (workdir / "my-checkpoint-GGUF" / "manifest.json").is_file()
    if "download(" in code:  # the path is a real file in the hub cache
        assert Path(printed).is_file()
