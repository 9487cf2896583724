"""Hostile arguments and files through ``edgekv.cli.main``: one line on stderr, the right exit code,
no traceback; an unexpected exception names its type and asks for EDGEKV_DEBUG=1 (issue #11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgekv.cli import main
from tests.ckptgen import HOSTILE_CHECKPOINTS, hostile_checkpoint

pytest.importorskip("llama_cpp")


@pytest.fixture
def no_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any llama.cpp dry run (the expensive compute-buffer probe) fails the test."""
    from edgekv.llama import build

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a dry run happened")

    monkeypatch.setattr(build, "dry_run", refuse)


def edgekv(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """(exit code, stderr) of ``edgekv ARGS`` through main(), the console entry point."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    code = e.value.code
    return (code if isinstance(code, int) else 1), err


def one_line(capsys: pytest.CaptureFixture[str], *args: object, code: int = 1) -> str:
    got, err = edgekv(capsys, *args)
    assert got == code, err
    # the CPU-build note of run (a note and its indented pip line) is not an error line
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("note:", "  "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_pick_empty_kv(capsys: pytest.CaptureFixture[str]) -> None:
    assert "no KV cache type" in one_line(capsys, "pick", "--vram", "8G", "--kv", "")


def test_pick_empty_model_does_not_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--model is empty" in one_line(capsys, "pick", "--vram", "8G", "--model", "")


@pytest.mark.parametrize("quants", ["Q9_9", "Q4_K_M,Q9_9"])
def test_pick_unknown_quant_is_named(capsys: pytest.CaptureFixture[str], quants: str) -> None:
    line = one_line(capsys, "pick", "--vram", "8G", "--quants", quants, code=2)
    assert "'Q9_9'" in line and "--family" not in line


def test_pick_quant_no_catalog_file_has_is_named_not_family(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(capsys, "pick", "--vram", "8G", "--quants", "IQ1_S")
    assert "--quants IQ1_S" in line and "Q4_K_M" in line and "--family/--model" not in line


@pytest.mark.parametrize("verb", [["pick"], ["inspect", "TINY"]])
def test_empty_vram_is_not_ignored(capsys: pytest.CaptureFixture[str], tiny: Path, verb: list[str]) -> None:
    args = [str(tiny) if a == "TINY" else a for a in verb]
    assert "cannot read '' as a memory size" in one_line(capsys, *args, "--vram", "", code=2)


def _plan(tmp_path: Path, tiny: Path, **change: object) -> Path:
    plan = {
        "vram_bytes": 1 << 30, "task": "math",
        "plans": [{"model": "tiny", "quant": "F16", "repo": None, "file": tiny.name, "path": str(tiny),
                   "type_k": "q8_0", "type_v": "q8_0", "n_ctx": 1024, "parallel": 1, "n_gpu_layers": -1}],
    }  # fmt: skip
    for key, value in change.items():
        (plan if key == "vram_bytes" else plan["plans"][0])[key] = value  # type: ignore[index]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"repo": "not a//repo", "path": None}, "repo = 'not a//repo' is not a hub repo id"),
        ({"parallel": "x"}, "parallel = 'x' is not an integer"),
        ({"vram_bytes": "eight"}, "vram_bytes = 'eight' is not an integer"),
    ],
)
def test_run_bad_plan_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path, change: dict[str, object], text: str
) -> None:
    line = one_line(capsys, "run", "--plan", _plan(tmp_path, tiny, **change), "--prompt", "hi")
    assert "plan.json" in line and text in line


def test_run_huge_context_is_refused_before_any_dry_run(
    capsys: pytest.CaptureFixture[str], tiny: Path, no_dry_run: None
) -> None:
    """Past 16M tokens (bounds.TOKENS) a usage error as the flag is read; within it, the memory model's."""
    line = one_line(capsys, "run", tiny, "--vram", "8G", "--ctx", "99999999999999", "--prompt", "hi", code=2)
    assert "'99999999999999' tokens is more than 16M" in line
    line = one_line(capsys, "run", tiny, "--vram", "8G", "--ctx", "16384k", "--prompt", "hi")
    assert "at 16777216 tokens" in line and "short" in line


def test_bench_huge_context_is_refused_before_any_dry_run_and_exits_1(
    capsys: pytest.CaptureFixture[str], tiny: Path, no_dry_run: None
) -> None:
    assert "'100m' tokens is more than 16M" in one_line(capsys, "bench", tiny, "--ctx", "100m", "--json", code=2)
    code, err = edgekv(capsys, "bench", tiny, "--ctx", "16m", "--kv", "f16", "--vram", "1G", "--json")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: none of the 1 configuration(s) ran")


@pytest.mark.parametrize("ctx", ["0", "0,4k", ","])
def test_bench_zero_or_no_context_is_refused(capsys: pytest.CaptureFixture[str], tiny: Path, ctx: str) -> None:
    assert "positive token count" in one_line(capsys, "bench", tiny, "--ctx", ctx)


@pytest.mark.parametrize("verb", ["run", "bench"])
def test_negative_context_says_negative(capsys: pytest.CaptureFixture[str], tiny: Path, verb: str) -> None:
    extra = ["--prompt", "hi"] if verb == "run" else []
    line = one_line(capsys, verb, tiny, "--ctx", "-5", *extra, code=2)
    assert "must not be negative" in line and "cannot read" not in line


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "verb", [["run", "X", "--prompt", "hi"], ["bench", "X"], ["inspect", "X"], ["pick", "--vram", "8G", "--gguf", "X"]]
)
def test_fifo_is_named_not_missing(capsys: pytest.CaptureFixture[str], fifo: Path, verb: list[str]) -> None:
    line = one_line(capsys, *[str(fifo) if a == "X" else a for a in verb])
    assert "is a FIFO" in line and "no such" not in line


def test_fifo_as_convert_inputs(capsys: pytest.CaptureFixture[str], fifo: Path, ckpt: Path, tmp_path: Path) -> None:
    assert "is a FIFO (named pipe), not a folder" in one_line(capsys, "convert", fifo)
    line = one_line(capsys, "convert", ckpt, "--imatrix", fifo, "--outdir", tmp_path / "out")
    assert "is a FIFO" in line and "imatrix" in line


@pytest.mark.parametrize("verb", [["run", "X", "--prompt", "hi"], ["bench", "X"]])
def test_directory_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, verb: list[str]) -> None:
    code, err = edgekv(capsys, *[str(tmp_path) if a == "X" else a for a in verb])
    assert code == 2 and "is a directory" in err and "no such" not in err


def test_inspect_directory_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = one_line(capsys, "inspect", tmp_path)
    assert "is a directory" in line and "no such" not in line


def test_convert_quant_is_named(capsys: pytest.CaptureFixture[str], ckpt: Path, tmp_path: Path) -> None:
    line = one_line(capsys, "convert", ckpt, "--quants", "Q9_9", "--outdir", tmp_path / "out", code=2)
    assert "'Q9_9'" in line and "--family" not in line


def test_convert_outdir_below_a_file(capsys: pytest.CaptureFixture[str], ckpt: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert "which is a file" in one_line(capsys, "convert", ckpt, "--outdir", tmp_path / "afile" / "out")


@pytest.mark.parametrize("case", sorted(HOSTILE_CHECKPOINTS))
def test_convert_hostile_checkpoint_is_one_line(
    capsys: pytest.CaptureFixture[str], ckpt: Path, tmp_path: Path, case: str
) -> None:
    bad = hostile_checkpoint(ckpt, tmp_path / "ck", case)
    line = one_line(capsys, "convert", bad, "--quants", "Q8_0", "--outdir", tmp_path / "out", "--json")
    assert str(bad) in line
    assert not list((tmp_path / "out").glob("*.gguf*")) if (tmp_path / "out").exists() else True


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = edgekv(capsys, "run", "--prompt", "hi")
    assert code == 2 and "give MODEL.gguf or --plan" in err


def test_internal_error_names_its_type_and_asks_for_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgekv.requests.pick as pick_request

    def broken(*_a: object, **_k: object) -> None:
        raise KeyError("x")

    monkeypatch.setattr(pick_request, "answer", broken)
    code, err = edgekv(capsys, "pick", "--vram", "8G")
    assert code == 1
    assert err.strip() == (
        "edgekv: internal error (KeyError: 'x'); rerun with EDGEKV_DEBUG=1 for the traceback and report it"
    )
    monkeypatch.setenv("EDGEKV_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["pick", "--vram", "8G"])


def test_debug_shows_the_edgekv_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekv.errors import SpecError

    monkeypatch.setenv("EDGEKV_DEBUG", "1")
    with pytest.raises(SpecError):
        main(["pick", "--vram", "8X"])


@pytest.mark.parametrize(
    "verb",
    [
        ["run", "TINY", "--prompt", "hi", "--max-tokens", "1"],
        ["bench", "TINY", "--n-prompt", "8", "--n-gen", "2"],
        ["eval", "TINY", "--dataset", "synth", "--limit", "1", "--budget", "4"],
        ["sweep", "--vram", "1G", "--dataset", "synth", "--dry-run", "--out", "OUT"],
        ["convert", "CKPT", "--quants", "Q8_0", "--outdir", "OUT"],
    ],
)
def test_threads_past_llama_cpps_limit_are_refused_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path, ckpt: Path, verb: list[str]
) -> None:
    """--threads 100000 crashed llama.cpp (segfault or std::bad_alloc); now a usage error first.
    (bench/eval were refused by the runner's own check, run after its header, convert after it had
    converted; the option itself refuses now)."""
    names = {"TINY": str(tiny), "CKPT": str(ckpt), "OUT": str(tmp_path / "out")}
    line = one_line(capsys, *[names.get(a, a) for a in verb], "--threads", "100000", code=2)
    assert "--threads 100000 is outside the 1..512 threads llama.cpp accepts" in line
    assert not (tmp_path / "out").exists()  # refused while the flags are read: nothing written


@pytest.mark.parametrize(("vram", "text"), [("8", "'8' has no unit"), ("9999999T", "more than 1 PiB")])
def test_a_size_without_a_unit_or_past_any_machine_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], vram: str, text: str
) -> None:
    """`pick --vram 8` said "nothing fits 8 B"; `--vram 9999999T` planned for it with exit 0."""
    assert text in one_line(capsys, "pick", "--vram", vram, code=2)
