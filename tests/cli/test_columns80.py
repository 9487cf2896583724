"""Issue #28: at 80 columns pick's llama-server command is still one command a user can paste (it was
hard-wrapped: a paste ran two commands), and sweep, frontier, convert and bench keep their key values
whole (they were cut to "…"): less important columns go first, and what still does not fit folds."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import main_ok
from tests.resultgen import scale_rule_results

pytest.importorskip("llama_cpp")


@pytest.fixture(autouse=True)
def _eighty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def edgekv(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    return main_ok(capsys, *args)[0]


def within_80(out: str, *, except_words: tuple[str, ...] = ()) -> None:
    """Every line fits 80 columns (but a line that is one word too long to break, which stays whole),
    and nothing was cut to an ellipsis."""
    assert "…" not in out, out
    for line in out.splitlines():
        assert len(line) <= 80 or any(w in line for w in except_words), line


def command_after(out: str, head: str) -> tuple[list[str], list[str]]:
    """(the llama-server command lines, the llama_cpp.Llama call lines) printed after ``head``."""
    lines = out.splitlines()
    i = lines.index(head) + 1
    server = [lines[i]]
    while server[-1].endswith(" \\"):
        i += 1
        server.append(lines[i])
    i += 1
    call = [lines[i]]
    while not call[-1].endswith(")"):
        i += 1
        call.append(lines[i])
    return server, call


def pasted(lines: list[str]) -> list[str]:
    """What a shell runs when the lines are pasted: backslash-newline joins them (POSIX line continuation)."""
    return shlex.split("\n".join(lines).replace("\\\n", ""))


def plan_json(capsys: pytest.CaptureFixture[str], *args: object) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(edgekv(capsys, "pick", *args, "--json"))["plans"][0]
    return plan


@pytest.mark.parametrize("vram", ["8G", "24G"])
def test_pick_server_command_is_one_pasteable_command(capsys: pytest.CaptureFixture[str], vram: str) -> None:
    out = edgekv(capsys, "pick", "--vram", vram)
    within_80(out)
    server, call = command_after(out, "llama.cpp settings for #1:")
    args = plan_json(capsys, "--vram", vram)["llama_args"]
    assert pasted(server) == args["server"]
    assert len(server) > 1  # it did not fit one line of 80: continued, not wrapped
    expr = ast.parse("\n".join(line.strip() for line in call), mode="eval").body
    assert isinstance(expr, ast.Call) and ast.unparse(expr.func) == "llama_cpp.Llama"
    assert {k.arg: ast.literal_eval(k.value) for k in expr.keywords} == args["python"]


def test_pick_long_gguf_path_stays_whole(capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path) -> None:
    """A path longer than the terminal is never split: it stands whole on its own line."""
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "my model file.gguf"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(tiny.read_bytes())
    out = edgekv(capsys, "pick", "--vram", "1G", "--gguf", deep)
    within_80(out, except_words=(shlex.quote(str(deep)),))
    server, _call = command_after(out, "llama.cpp settings for #1:")
    assert pasted(server) == plan_json(capsys, "--vram", "1G", "--gguf", deep)["llama_args"]["server"]
    assert any(line.strip().startswith(shlex.quote(str(deep))) for line in server)


def test_sweep_dry_run_keeps_model_files_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["sweep", "--vram", "4G,8G", "--dataset", "synth", "--limit", "3", "--dry-run", "--out", tmp_path / "sw"]
    out = edgekv(capsys, *args)
    within_80(out)
    manifest = json.loads(edgekv(capsys, *args, "--json"))
    rows = [ln for ln in out.splitlines() if ".gguf" in ln]
    assert len(rows) == len(manifest["items"])
    for row, item in zip(rows, manifest["items"], strict=True):
        cells = row.split()
        assert item["model_file"] in cells and str(item["budget_tokens"]) in cells and item["type_k"] in cells


def test_frontier_keeps_models_and_accuracy_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = scale_rule_results(tmp_path / "r.jsonl")
    out = edgekv(capsys, "frontier", path)
    within_80(out)
    # the paper-accounting frontier of tests/resultgen.py, by hand: its points' GiB and accuracy
    for gib, acc in [("0.82", "0.100"), ("1.42", "0.200"), ("2.58", "0.300"), ("4.48", "0.450"), ("8.70", "0.750")]:
        assert any(gib in ln.split() and acc in ln.split() for ln in out.splitlines()), (gib, acc, out)
    for model in "ABCDE":
        assert f"{model}-Q8_0.gguf" in out


def test_convert_keeps_file_names_whole(capsys: pytest.CaptureFixture[str], ckpt: Path, tmp_path: Path) -> None:
    out = edgekv(capsys, "convert", ckpt, "--outdir", tmp_path / "o", "--quants", "Q8_0,Q4_0", "--threads", "1")
    within_80(out, except_words=(str(tmp_path),))  # the title names the output folder
    for name in ("Llama-tiny-F16.gguf", "Llama-tiny-Q8_0.gguf", "Llama-tiny-Q4_0.gguf"):
        assert any(ln.strip("│ ").split("│")[0].strip() == name for ln in out.splitlines()), out
    assert f"manifest: {tmp_path / 'o' / 'manifest.json'}" in out.splitlines()  # a path to paste: not wrapped


def test_bench_keeps_memory_and_speed_whole(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    out = edgekv(capsys, "bench", tiny, "--ctx", "512,1024", "--kv", "f16,q8_0/q4_0", "--n-prompt", "16",
                 "--n-gen", "4", "--threads", "1")  # fmt: skip
    within_80(out)
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["f16"], ["q8_0/q4_0"])]
    assert [r[:2] for r in rows] == [["f16", "512"], ["f16", "1024"], ["q8_0/q4_0", "512"], ["q8_0/q4_0", "1024"]]
    for r in rows:  # the memory cell: predicted/measured MiB, both whole
        pred, meas = r[-1].split("/")
        assert float(pred) > 1 and float(meas) > 1
