"""Issue #28: the verbs added after inspect (run, bench, eval, sweep, frontier, calibrate, convert, pick's
policy flags) under hostile input: one ``error:`` line, exit 2 (usage) or 1 (a bad file), never 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from edgekv.cli import main
from edgekv.errors import DatasetError
from edgekv.eval.datasets import load_problems
from tests.cli.test_hostile_cli import edgekv, one_line

pytest.importorskip("llama_cpp")


def click_usage(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """click's own usage error (exit 2): its ``Error:`` line."""
    code, err = edgekv(capsys, *args)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, err
    return lines[0]


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
    assert "--ngl" in line and "-5 is not in the range -1<=x<=2147483647" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5"])
@pytest.mark.parametrize(
    "verb", [["run", "TINY", "--prompt", "hi"], ["eval", "TINY", "--dataset", "synth", "--limit", "1"]]
)
def test_temperature_must_be_a_finite_non_negative_number(
    capsys: pytest.CaptureFixture[str], tiny: Path, verb: list[str], value: str
) -> None:
    """`--temperature nan` ran with exit 0."""
    line = click_usage(capsys, *[str(tiny) if a == "TINY" else a for a in verb], f"--temperature={value}")
    assert "--temperature" in line and ("not a finite number" in line or "not in the range 0<=x<=100" in line)


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


def test_frontier_png_must_name_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`frontier --png out.txt` drew the table, then failed in matplotlib ("internal error")."""
    (tmp_path / "r.jsonl").write_text("")
    line = click_usage(capsys, "frontier", tmp_path / "r.jsonl", "--png", tmp_path / "out.txt")
    assert "--png" in line and "out.txt' is not a .png file name" in line


JUNK = {
    "empty": {},
    "not JSON files": {"notes.txt": b"hello\n", "data.bin": b"\x00\xff\xfe\x01\n"},
    "binary jsonl": {"r.jsonl": b"\xff\xfe\x00garbage\n"},
    "text jsonl": {"r.jsonl": b"hello world\n"},
    "JSON, not results": {"r.jsonl": b'{"a": 1}\n[1, 2]\n'},
}
JUNK_SAYS = {
    "empty": "holds no results files (*.jsonl)",
    "not JSON files": "holds no results files (*.jsonl)",
    "binary jsonl": "r.jsonl:1 is not UTF-8 text (byte 0xff at column 1)",
    "text jsonl": "r.jsonl:1 is not JSON",
    "JSON, not results": "no eval result lines in",
}


@pytest.mark.parametrize("verb", ["frontier", "calibrate"])
@pytest.mark.parametrize("junk", list(JUNK))
def test_results_folder_of_junk_is_one_error_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, verb: str, junk: str
) -> None:
    """frontier and calibrate accepted an empty folder (exit 0) and failed with "internal error" on
    non-UTF-8 files."""
    folder = tmp_path / "sweep-x"
    folder.mkdir()
    for name, data in JUNK[junk].items():
        (folder / name).write_bytes(data)
    line = one_line(capsys, verb, folder)
    assert JUNK_SAYS[junk] in line and str(folder) in line


def test_sweep_on_a_binary_manifest_names_it(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path) -> None:
    """A sweep folder whose sweep.json is not text: "internal error (UnicodeDecodeError)"."""
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    line = one_line(capsys, "sweep", "--vram", "8G", "--dataset", "synth", "--limit", "1", "--gguf", tiny,
                    "--budgets", "16", "--samples", "1", "--kv", "f16", "--out", out)  # fmt: skip
    assert f"{out / 'sweep.json'}:1: not UTF-8 text (byte 0x89 at column 1): not a sweep manifest" in line


NOT_UTF8 = {
    "jsonl": b'{"question": "1+1?", "answer": "2"}\n{"question": "caf\xe9", "answer": "3"}\n',
    "csv": b"question,answer\ncaf\xe9,3\n1+1?,2\n",
    "json": b'[{"question": "1+1?", "answer": "2"},\n {"question": "caf\xe9", "answer": "3"}]\n',
}


@pytest.mark.parametrize("ext", list(NOT_UTF8))
def test_dataset_not_utf8_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path, ext: str
) -> None:
    """A Latin-1 dataset was "internal error (UnicodeDecodeError ...)"."""
    path = tmp_path / f"set.{ext}"
    path.write_bytes(NOT_UTF8[ext])
    line = one_line(capsys, "eval", tiny, "--dataset", path, "--limit", "2")
    assert f"{path}:2: not UTF-8 text (byte 0xe9" in line


def test_dataset_folder_fifo_and_loop_say_what_they_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path
) -> None:
    """A folder or a FIFO as --dataset was "no such file and not a known dataset"."""
    line = one_line(capsys, "eval", tiny, "--dataset", tmp_path, "--limit", "1")
    assert f"{tmp_path} is a directory, not a file" in line and "no such file" not in line
    fifo = tmp_path / "set.jsonl"
    os.mkfifo(fifo)
    line = one_line(capsys, "eval", tiny, "--dataset", fifo, "--limit", "1")
    assert f"{fifo} is a FIFO" in line and "no such file" not in line
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    line = one_line(capsys, "eval", tiny, "--dataset", loop, "--limit", "1")
    assert str(loop) in line and "symbolic links" in line and "no such file" not in line


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_dataset_line_over_1_mib_is_refused_unread(tmp_path: Path, ext: str) -> None:
    """One 50 MB JSONL line took 2.5 GB before its refusal; now at most 1 MiB + 1 byte of it is read."""
    path = tmp_path / f"big.{ext}"
    head = b'{"question": "1+1?", "answer": "2"}\n' if ext == "jsonl" else b"question,answer\n"
    with path.open("wb") as f:
        f.write(head)
        f.write(b'{"question": "' if ext == "jsonl" else b'"')
        for _ in range(16):  # 16 MiB in one line
            f.write(b"x" * (1 << 20))
        f.write(b'", "answer": "2"}\n' if ext == "jsonl" else b'",2\n')
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as e:
            load_problems(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value).startswith(f"{path}:2: line longer than 1 MiB")
    assert peak < 4 << 20, peak  # the 16 MiB line was not read whole (1 MiB + 1 byte of it, and its text)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
OTHER_OUT = {
    "binary": (PNG, "out.png:1 is not UTF-8 text (byte 0x89 at column 1): not an eval results file"),
    "binary, no newline": (PNG.replace(b"\n", b""), "out.png:1 is neither an eval result line nor one cut short"),
    "another JSONL format": (b'{"name": "a", "score": 1}\n', "out.png:1 is not an eval result line (keys: name, sc"),
    "another schema": (b'{"schema": 9, "type": "problem"}\n', "out.png:1 has results schema 9"),
}


@pytest.mark.parametrize("kind", list(OTHER_OUT))
def test_eval_out_of_another_kind_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path, kind: str
) -> None:
    """`eval --out` on a binary file was "internal error"; on a JSONL file of another format it appended (exit
    0); a file without a newline would have been cut to nothing as a "torn line"."""
    data, says = OTHER_OUT[kind]
    out = tmp_path / "out.png"
    out.write_bytes(data)
    line = one_line(capsys, "eval", tiny, "--dataset", "synth", "--limit", "1", "--budget", "4", "--out", out)
    assert f"{tmp_path}/{says}" in line
    assert out.read_bytes() == data


def test_second_writer_on_one_results_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path
) -> None:
    """Two evals on one --out each ran every problem, both appending; the second is now refused while the
    first holds the file (here a second process holds its flock, as a running eval does)."""
    out = tmp_path / "r.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        args = ["eval", tiny, "--dataset", "synth", "--limit", "1", "--budget", "4", "--out", out]
        line = one_line(capsys, *args)
        assert f"{out} is being written by another edgekv eval or sweep" in line
        assert out.read_bytes() == b""
    finally:
        holder.communicate("")
    main([str(a) for a in args])  # the first run ended: the file is free
    assert b'"type":"summary"' in out.read_bytes()


def test_eval_0_percent_prints_one_wilson_interval(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """The tiny random model gets none of 10 synth problems in 4 tokens: pass@1 printed [0, 0] and maj@1
    another interval; now both are Wilson's 0/10, [0, 0.2775] (z^2 / (10 + z^2), by hand)."""
    main(["eval", str(tiny), "--dataset", "synth", "--limit", "10", "--budget", "4", "--samples", "1",
          "--temperature", "0", "--json"])  # fmt: skip
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["pass_at_1"]["value"] == 0.0
    for e in (m["pass_at_1"], m["pass_at_k"][0], m["maj_at_k"][0]):
        assert (e["low"], round(e["high"], 4)) == (0.0, 0.2775)


def test_eval_refused_by_the_preflight_leaves_no_results_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path
) -> None:
    out = tmp_path / "r.jsonl"
    line = one_line(capsys, "eval", tiny, "--dataset", "synth", "--limit", "1", "--budget", "4", "--vram", "1M",
                    "--out", out)  # fmt: skip
    assert line.startswith("error: ") and not out.exists()


def test_pick_gguf_and_repo_together_is_refused(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """`pick --gguf X --repo Y` ranked X and ignored the repo, exit 0."""
    line = click_usage(capsys, "pick", "--vram", "8G", "--gguf", tiny, "--repo", "a/b")
    assert "--gguf and --repo cannot be used together" in line


@pytest.mark.parametrize("manifest", [b"[1, 2]", b'{"type": "notes"}', b'{"type": "sweep", "picks": 7}'])
def test_sweep_json_that_is_not_a_manifest_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: Path, manifest: bytes
) -> None:
    """A sweep.json that is not edgekv's was read as "no manifest": a sweep would have overwritten it, and
    frontier ignored it (exit 0); one with picks of the wrong type was "internal error" in frontier."""
    out = tmp_path / "sw"
    (out / "results").mkdir(parents=True)
    (out / "sweep.json").write_bytes(manifest)
    line = one_line(capsys, "sweep", "--vram", "8G", "--dataset", "synth", "--limit", "1", "--gguf", tiny,
                    "--budgets", "16", "--samples", "1", "--kv", "f16", "--out", out)  # fmt: skip
    assert str(out / "sweep.json") in line and "not a sweep manifest" in line or "picks = 7" in line
    assert (out / "sweep.json").read_bytes() == manifest
