"""Issue #28: Ctrl-C anywhere ends with exit 130, "Interrupted." and no traceback, leaves no partial
file under its final name, and the same command run again completes.

Each case runs the console entry point in a subprocess that sends itself SIGINT at a chosen call
(tests/cli/sigint_child.py): inside llama.cpp's log callback while convert quantizes (where the
interrupt was swallowed and convert went on to exit 0), while eval, sweep, run and bench decode, and
between the files of a download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.hub import SPLIT, FakeHub

pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("sigint_child.py")


def interrupted(where: str, n: int, *args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``edgekv ARGS`` with a SIGINT at the n-th call of ``where`` (MODULE:QUALNAME)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    env.pop("EDGEKV_DEBUG", None)
    return subprocess.run(
        [sys.executable, str(CHILD), where, str(n), *[str(a) for a in args]],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def edgekv(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "edgekv", *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)  # fmt: skip


def assert_interrupted(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 130, (r.returncode, r.stderr[-2000:])
    assert r.stderr.rstrip().endswith("Interrupted."), r.stderr[-2000:]
    for bad in ("Traceback", "Exception ignored", "internal error", "KeyboardInterrupt"):
        assert bad not in r.stderr, r.stderr[-2000:]


def no_partial_files(folder: Path) -> None:
    assert sorted(str(p) for p in folder.rglob("*.incomplete")) == []


def test_ctrl_c_while_convert_quantizes(ckpt: Path, tmp_path: Path) -> None:
    """The SIGINT arrives inside llama.cpp's log callback during llama_model_quantize: it was printed as
    "Exception ignored ... KeyboardInterrupt" and convert finished with exit 0."""
    out = tmp_path / "out"
    args = ["convert", ckpt, "--outdir", out, "--quants", "Q8_0", "--threads", "1"]
    r = interrupted("edgekv.llama.quantize:_TensorProgress.line", 3, *args)
    assert_interrupted(r)
    no_partial_files(out)
    assert not list(out.glob("*Q8_0*.gguf"))
    again = edgekv(*args)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*Q8_0.gguf"))) == 1
    no_partial_files(out)


def test_ctrl_c_while_convert_writes_f16(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["convert", ckpt, "--outdir", out, "--quants", "Q8_0", "--threads", "1"]
    assert_interrupted(interrupted("edgekv.convert.tensors:_convert_chunk", 2, *args))
    no_partial_files(out)
    assert not list(out.glob("*.gguf"))
    again = edgekv(*args)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*.gguf"))) == 2


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ctrl_c_while_eval_decodes_and_the_rerun_resumes(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    args = ["eval", tiny, "--dataset", "synth", "--limit", "6", "--budget", "16", "--samples", "1", "--slots", "1",
            "--threads", "1", "--out", out]  # fmt: skip
    assert_interrupted(interrupted("edgekv.llama.batch:Engine._step", 200, *args))  # problem 3 of 6
    kept = _lines(out)  # every line whole (json.loads of each), and no summary: the run did not end
    done = [d for d in kept if d["type"] == "problem"]
    assert 0 < len(done) < 6 and not [d for d in kept if d["type"] == "summary"]
    again = edgekv(*args)
    assert again.returncode == 0, again.stderr
    problems = [d for d in _lines(out) if d["type"] == "problem"]
    ids = [str(d["problem_id"]) for d in problems]
    assert len(ids) == len(set(ids)) == 6  # the rerun ran only the problems not done: none twice
    assert ids[: len(done)] == [str(d["problem_id"]) for d in done]


def test_ctrl_c_while_sweep_runs_and_the_rerun_completes(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    args = ["sweep", "--vram", "1G", "--dataset", "synth", "--limit", "3", "--gguf", tiny, "--budgets", "16,32",
            "--samples", "1", "--kv", "f16", "--slots", "1", "--threads", "1", "--out", out]  # fmt: skip
    assert_interrupted(interrupted("edgekv.llama.batch:Engine._step", 60, *args))
    no_partial_files(out)
    again = edgekv(*args)
    assert again.returncode == 0, again.stderr
    assert "Sweep done" in again.stdout
    no_partial_files(out)


@pytest.mark.parametrize(
    ("verb", "where", "n"),
    [
        (["run", "TINY", "--prompt", "hi", "--max-tokens", "64", "--ctx", "512"], "edgekv.llama.batch:Engine._step", 5),
        (["run", "TINY", "--prompt", "hi", "--max-tokens", "8", "--ctx", "512"], "edgekv.llama.log:LlamaLog._emit", 20),
        (["bench", "TINY", "--ctx", "512", "--n-prompt", "32", "--n-gen", "16"], "edgekv.llama.bench:time_decode", 2),
        (["bench", "TINY", "--ctx", "512", "--n-prompt", "32", "--n-gen", "16"], "edgekv.llama.log:LlamaLog._emit", 30),
    ],
)  # fmt: skip
def test_ctrl_c_while_run_or_bench_works(tiny: Path, verb: list[str], where: str, n: int) -> None:
    """LlamaLog._emit runs inside llama.cpp's log callback (while the model loads): the interrupt
    there was printed as "Exception ignored" and lost."""
    args = [str(tiny) if a == "TINY" else a for a in verb]
    assert_interrupted(interrupted(where, n, *args, "--threads", "1"))


def test_ctrl_c_between_the_files_of_a_download(hub: FakeHub, tmp_path: Path) -> None:
    """A split GGUF of three files, interrupted when the first is checked: the rerun fetches the rest."""
    cache = tmp_path / "hf"
    args = ["download", SPLIT, "--quant", "Q4_K_M", "--endpoint", hub.url, "--cache-dir", cache, "--json"]
    assert_interrupted(interrupted("edgekv.hub.download:_verify", 1, *args))
    no_partial_files(cache)
    again = edgekv(*args)
    assert again.returncode == 0, again.stderr
    files = json.loads(again.stdout)["files"]
    assert len(files) == 3 and all(Path(f["path"]).is_file() for f in files)
