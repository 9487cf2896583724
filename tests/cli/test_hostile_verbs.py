"""Issue #28: the verbs added after inspect (run, bench, eval, sweep, frontier, calibrate, convert, pick's
policy flags) under hostile input: one ``error:`` line, exit 2 (usage) or 1 (a bad file), never 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ckptgen import write_llama_checkpoint
from tests.cli.test_hostile_cli import edgekv, one_line
from tests.ggufgen import tiny_config, write_tiny_gguf

pytest.importorskip("llama_cpp")


def click_usage(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """click's own usage error (exit 2): its ``Error:`` line."""
    code, err = edgekv(capsys, *args)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_checkpoint(tmp_path_factory.mktemp("ck") / "Llama-tiny")


def test_bench_with_nothing_to_time_is_refused(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """`bench --n-prompt 0 --n-gen 0` printed "nan" speeds with exit 0."""
    line = one_line(capsys, "bench", tiny, "--n-prompt", "0", "--n-gen", "0", code=2)
    assert "nothing to time" in line


@pytest.mark.parametrize(
    "verb",
    [
        ["run", "TINY", "--prompt", "hi"],
        ["bench", "TINY"],
        ["eval", "TINY", "--dataset", "synth", "--limit", "1"],
    ],
)
def test_ngl_below_minus_one_is_a_usage_error(capsys: pytest.CaptureFixture[str], tiny: Path, verb: list[str]) -> None:
    """llama.cpp reads any negative --ngl as every layer; edgekv names -1, so -5 is refused, not run."""
    line = click_usage(capsys, *[str(tiny) if a == "TINY" else a for a in verb], "--ngl", "-5")
    assert "--ngl" in line and "-5 is not in the range x>=-1" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5"])
@pytest.mark.parametrize(
    "verb", [["run", "TINY", "--prompt", "hi"], ["eval", "TINY", "--dataset", "synth", "--limit", "1"]]
)
def test_temperature_must_be_a_finite_non_negative_number(
    capsys: pytest.CaptureFixture[str], tiny: Path, verb: list[str], value: str
) -> None:
    """`--temperature nan` ran with exit 0."""
    line = click_usage(capsys, *[str(tiny) if a == "TINY" else a for a in verb], f"--temperature={value}")
    assert "--temperature" in line and ("not a finite number" in line or "not in the range x>=0" in line)


def test_pick_saturation_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--saturation 0" in one_line(capsys, "pick", "--vram", "8G", "--saturation", "0", code=2)


@pytest.mark.parametrize(("flag", "value"), [("--budgets", "0"), ("--budgets", "0,2k"), ("--budgets", ","),
                                             ("--samples", "0"), ("--samples", "x")])  # fmt: skip
def test_sweep_dry_run_zero_budget_or_samples_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, value: str
) -> None:
    """`sweep --dry-run --budgets 0` planned configurations of 0-token budgets with exit 0."""
    line = one_line(capsys, "sweep", "--vram", "8G", "--dataset", "synth", "--dry-run", "--out", tmp_path / "sw",
                    flag, value, code=2)  # fmt: skip
    assert flag in line


@pytest.mark.parametrize("quants", ["", ",", " , "])
def test_convert_empty_quants_is_refused(
    capsys: pytest.CaptureFixture[str], ckpt: Path, tmp_path: Path, quants: str
) -> None:
    """`convert --quants ''` converted to F16, quantized nothing and exited 0."""
    line = one_line(capsys, "convert", ckpt, "--quants", quants, "--outdir", tmp_path / "out", code=2)
    assert "--quants is empty" in line
    assert not (tmp_path / "out").exists()
