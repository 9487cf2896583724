"""The README stays true: its pick outputs are the real ones, and its library examples run."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ckptgen import write_qwen3_checkpoint
from tests.fakes.hub import FakeHub, get_fake_hub, make_gguf

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_pick_outputs_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_picks.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _library_blocks() -> list[str]:
    section = README[README.index("## Library use") : README.index("## Layout")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_library_section_has_the_five_examples() -> None:
    names = ["pick(", "read_spec(", "convert_checkpoint(", "download(", "run_prompt("]
    blocks = _library_blocks()
    assert len(blocks) == 5 and all(any(n in b for b in blocks) for n in names)


@pytest.fixture
def workdir(tmp_path: Path, gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "model.gguf").symlink_to(gemma_gguf)
    write_qwen3_checkpoint(tmp_path / "my-checkpoint")
    hub: FakeHub = get_fake_hub()
    (tmp_path / "src").mkdir()
    gguf = make_gguf(tmp_path / "src" / "Qwen_Qwen3-4B-Q4_K_M.gguf", quant="Q4_K_M", seed=4)[0]
    hub.add_repo("bartowski/Qwen_Qwen3-4B-GGUF", {gguf.name: gguf.read_bytes()})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", range(5))
def test_library_example_runs(index: int, workdir: Path) -> None:
    code = _library_blocks()[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README example {index + 1}", "exec"), {"__name__": "readme"})
    printed = out.getvalue()
    assert printed.strip(), "the example prints what it shows"
    if "download(" in code:
        assert Path(printed.strip()).is_file() and os.environ["HF_ENDPOINT"]
    if "convert_checkpoint(" in code:
        assert (workdir / "my-checkpoint-GGUF" / "manifest.json").is_file()
        assert "Q8_0" in printed and "Q4_K_M" in printed
