"""Issue #28's hostile-input suite: the seeded, table-driven cases of ``tests.hostile`` (every verb,
every numeric option, every kind of file a verb reads) through ``edgekv.cli.main``, the console entry.

Each case: exit 1 or 2 (the one the table names, where it names one), never 0 on wrong input; no
traceback and no "internal error" line; under 30 s and 2 GiB (this process's peak RSS). Most run in
this process; a seeded sample, and the cases where llama.cpp may load a mutated GGUF, run in
subprocesses under a 2 GiB address-space limit, where a native crash is a negative exit code.
``python -m tests.hostile`` prints the counts by verb.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from edgekv.cli import VERBS, cli, main
from tests.hostile import SEED, SPARSE, Case, all_cases
from tests.resultgen import lines, scale_rule_accuracy, scale_rule_configs

pytest.importorskip("llama_cpp")

LIMIT_BYTES = 2 << 30
LIMIT_SECONDS = 30.0
NUMERIC_TEXT = {"--vram", "--margin", "--overhead", "--e1", "--e2", "--token-floor", "--saturation", "--max-time",
                "--tensor-split", "--parallel", "--min-ctx", "--ctx"}  # fmt: skip


def _numeric_options() -> dict[str, list[str]]:
    from tests.cli.test_bounds import numeric_options

    out = {}
    for verb in VERBS:
        cmd = cli.get_command(click.Context(cli), verb)
        assert cmd is not None
        out[verb] = [max(p.opts, key=len) for p in numeric_options(cmd)]
    return out


GOOD_RESULTS = "".join(json.dumps(r) + "\n" for r in lines(scale_rule_configs()[0], scale_rule_accuracy, n=3)).encode()
GOOD_PLAN = {
    "schema": 1, "vram_bytes": 1 << 30, "task": "math",
    "plans": [{"model": "tiny", "quant": "F16", "repo": None, "file": "tiny-qwen3-F16.gguf", "path": "TINY",
               "type_k": "q8_0", "type_v": "q8_0", "n_ctx": 1024, "parallel": 1, "n_gpu_layers": -1}],
}  # fmt: skip
CASES = all_cases(_numeric_options(), good_results=GOOD_RESULTS, good_plan=GOOD_PLAN)
IN_PROCESS = [c for c in CASES if not c.own_process]
SAMPLE = [*random.Random(SEED).sample(IN_PROCESS, 10), *(c for c in CASES if c.own_process)]


def _id(c: Case) -> str:
    return f"{c.verb}-{c.kind}-{c.name}"[:100]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """edgekv's own folder and the hub's cache in a temporary folder, the hub offline."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEKV_HOME", str(home / "edgekv"))
        mp.setenv("HF_HOME", str(home / "hf"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("EDGEKV_DEBUG", raising=False)
        from edgekv.serve import main as serve_main

        def refuse(*_a: object, **_k: object) -> None:  # wrong input must never start a server (it would block)
            raise AssertionError("the server started")

        mp.setattr(serve_main, "serve", refuse)
        yield home


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory, tiny: Path, ckpt: Path) -> dict[str, str]:
    base = tmp_path_factory.mktemp("fixtures")
    results = base / "results.jsonl"
    results.write_bytes(GOOD_RESULTS)
    return {"TINY": str(tiny), "CKPT": str(ckpt), "RESULTS": str(results)}


def materialize(case: Case, folder: Path, fixtures: dict[str, str]) -> list[str]:
    """The case's files written into ``folder``; its words with fixtures and @names resolved."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".keep"):
            continue
        if data == b"FIFO":
            os.mkfifo(path)
        elif name.split("/")[-1] == "r.jsonl" and case.name.endswith(tuple(SPARSE)):
            with path.open("wb") as f:
                f.truncate(SPARSE[next(k for k in SPARSE if case.name.endswith(k))])
        else:
            path.write_bytes(data.replace(b'"TINY"', json.dumps(fixtures["TINY"]).encode()))
    return [fixtures.get(w, str(folder / w[1:]) if w.startswith("@") else w) for w in case.args]


def check(case: Case, code: int, out: str, seconds: float) -> None:
    assert "Traceback" not in out and "internal error" not in out, out[-3000:]
    assert code >= 0, f"native crash: signal {-code}\n{out[-3000:]}"
    if case.wrong:
        assert code != 0, f"wrong input, exit 0:\n{out[-3000:]}"
        assert code in (1, 2), out[-3000:]
    if case.expect is not None:
        assert code == case.expect, f"exit {code}, not {case.expect}:\n{out[-3000:]}"
    assert seconds < LIMIT_SECONDS


@pytest.mark.parametrize("case", IN_PROCESS, ids=[_id(c) for c in IN_PROCESS])
def test_hostile_case(
    case: Case, env: Path, fixtures: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = materialize(case, tmp_path, fixtures)
    t0 = time.monotonic()
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    seconds = time.monotonic() - t0
    captured = capsys.readouterr()
    check(case, code, captured.err + captured.out, seconds)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < LIMIT_BYTES


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


@pytest.mark.parametrize("case", SAMPLE, ids=[_id(c) for c in SAMPLE])
def test_hostile_case_in_its_own_process(case: Case, env: Path, fixtures: dict[str, str], tmp_path: Path) -> None:
    """Under RLIMIT_AS 2 GiB: an allocation past it fails (an error line or a crash), never goes unseen."""
    argv = materialize(case, tmp_path, fixtures)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "edgekv", *argv], capture_output=True, text=True, errors="replace",
                       timeout=LIMIT_SECONDS + 10, preexec_fn=_limit, stdin=subprocess.DEVNULL)  # fmt: skip
    check(case, p.returncode, p.stderr + p.stdout, time.monotonic() - t0)


def test_the_suite_covers_every_verb_with_300_cases() -> None:
    by_verb: dict[str, int] = {}
    for c in CASES:
        by_verb[c.verb] = by_verb.get(c.verb, 0) + 1
    assert len(CASES) >= 300
    assert set(by_verb) == set(VERBS), set(VERBS) - set(by_verb)
    assert min(by_verb.values()) >= 10, by_verb
