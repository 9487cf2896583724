"""Issue #28: every numeric option of every verb has a bound (``edgekv.plan.bounds``), and a value past
it is a usage error (exit 2) as the flags are read, before llama.cpp is loaded or asked anything. The
native crashes and memory blow-ups the issue found are run in subprocesses under a 2 GiB address-space
limit: none may crash (a negative exit code) or exit 0."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from edgekv.cli import VERBS, cli
from tests.cli.test_hostile_cli import edgekv
from tests.ggufgen import tiny_config, write_tiny_gguf
from tests.hostile import BASE
from tests.hostile import NEEDS as HOSTILE_NEEDS

pytest.importorskip("llama_cpp")

# String options that hold numbers but whose default does not show it (read from the --help texts).
NUMERIC_TEXT = {"--vram", "--margin", "--overhead", "--e1", "--e2", "--token-floor", "--saturation", "--max-time",
                "--tensor-split", "--parallel", "--min-ctx", "--ctx"}  # fmt: skip
_NUMBERISH = re.compile(r"^[\d.,\skKmMgGtTiB/]+$")


def commands() -> list[tuple[str, click.Command]]:
    return [(verb, cli.get_command(click.Context(cli), verb)) for verb in VERBS]  # type: ignore[misc]


def numeric_options(cmd: click.Command) -> list[click.Option]:
    """The options that take a number, found from the outside: an int or float type, a default that is a
    number, a size or a list of them, or a name of NUMERIC_TEXT."""
    out = []
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.is_flag:
            continue
        name = max(p.opts, key=len)
        default = p.default if isinstance(p.default, (str, int, float)) and name != "--host" else None
        if (
            isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))
            or (isinstance(default, str) and _NUMBERISH.match(default) and not isinstance(p.type, click.Choice))
            or name in NUMERIC_TEXT
        ):
            out.append(p)
    return out


def test_every_numeric_option_has_a_bound() -> None:
    from edgekv.plan.bounds import OPTIONS

    seen = 0
    for verb, cmd in commands():
        for p in numeric_options(cmd):
            name = max(p.opts, key=len)
            assert name in OPTIONS, f"{verb} {name} has no bound in edgekv.plan.bounds.OPTIONS"
            if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
                assert isinstance(p.type, (click.IntRange, click.FloatRange)), f"{verb} {name}: unbounded type"
                assert p.type.max == OPTIONS[name].hi, f"{verb} {name}: type max {p.type.max} is not the table's"
                assert p.type.min is not None, f"{verb} {name}: no floor"
            seen += 1
    assert seen >= 90  # pick 13, download 12, eval 12, run 12, serve 16, bench 10, sweep 9, ...


def past(name: str) -> str:
    """A value just past the option's bound, written as a user would."""
    from edgekv.plan.bounds import OPTIONS

    b = OPTIONS[name]
    return {
        "tokens": "16385k",
        "bytes": "1025T",
        "seconds": "9000h",
        "share": "2000000,1",
        "fraction": "0.75" if b.hi == 0.5 else "1.5",
        "temperature": "101",
    }.get(b.unit, str(int(b.hi) + 1))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny: Path, ckpt: Path) -> dict[str, str]:
    from tests.resultgen import scale_rule_results  # a sweep's results, known by hand

    base = tmp_path_factory.mktemp("bounds")
    return {"TINY": str(tiny), "CKPT": str(ckpt), "RESULTS": str(scale_rule_results(base / "r.jsonl")),
            "@out": str(base / "out")}  # fmt: skip


# How each verb is reached (the hostile suite's), and what an option needs beside it: --parallel's
# timing runs need one KV type.
NEEDS = {**HOSTILE_NEEDS, ("bench", "--parallel"): ["--kv", "f16"]}

CASES = [(verb, max(p.opts, key=len)) for verb, cmd in commands() for p in numeric_options(cmd)]


@pytest.fixture
def no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading llama.cpp fails the test: a bound is checked before llama.cpp is asked anything."""
    from edgekv.llama import build, runner  # runner binds llama_lib at import: imported before the patch

    def refuse() -> None:
        raise AssertionError("llama.cpp was loaded")

    monkeypatch.setattr(build, "llama_lib", refuse)
    monkeypatch.setattr(runner, "llama_lib", refuse)
    from edgekv.serve import main as serve_main

    monkeypatch.setattr(serve_main, "serve", refuse)


@pytest.mark.parametrize(("verb", "option"), CASES, ids=[f"{v}{o}" for v, o in CASES])
def test_a_value_past_the_bound_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, str], no_llama: None, verb: str, option: str
) -> None:
    args = [inputs.get(a, a) for a in BASE[verb]]
    if option in args:  # the base's own value of it (pick's --vram): replaced
        del args[args.index(option) : args.index(option) + 2]
    args += NEEDS.get((verb, option), [])
    code, err = edgekv(capsys, *args, f"{option}={past(option)}")
    assert code == 2, err
    assert "internal error" not in err and option.lstrip("-") in err + past(option) or "more than" in err, err


def _limit_2g() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _edgekv_2g(*args: str, timeout: float = 60) -> tuple[int, str, float]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "edgekv", *args], capture_output=True, text=True, timeout=timeout,
                       preexec_fn=_limit_2g, stdin=subprocess.DEVNULL)  # fmt: skip
    return p.returncode, p.stderr, time.monotonic() - t0


def test_256_slots_of_256_samples_with_a_cue_each_run_not_abort(tiny: Path) -> None:
    """`eval --samples 256 --slots 256 --budget 8 --reserve 1` sent 256 x (1 + the cue's tokens) rows in one
    step, past n_batch 2048: GGML_ASSERT(n_tokens_all <= cparams.n_batch) and SIGABRT. The engine now
    decodes such a step's cue rows ahead, n_batch at a time."""
    args = ["--dataset", "synth", "--limit", "1", "--samples", "256", "--slots", "256", "--budget", "8"]
    code, err, _ = _edgekv_2g("eval", str(tiny), *args, "--reserve", "1", "--json", "--threads", "2")
    assert code == 0, err[-2000:]
    assert "GGML_ASSERT" not in err


def test_gguf_claiming_a_4_billion_token_context_stays_under_the_cap(tmp_path: Path) -> None:
    """`run FILE --vram 1G` on a GGUF whose context_length is 2^32-1 probed llama.cpp at 4 billion cells: 41 s,
    16.8 GB of RSS, std::bad_alloc. Now the probe is at most the context whose KV fits the cap, and the run
    goes through under a 2 GiB address-space limit (so nothing allocated past it)."""
    huge = write_tiny_gguf(tmp_path / "huge-ctx-F16.gguf", tiny_config(max_position_embeddings=2**32 - 1))
    code, err, seconds = _edgekv_2g("run", str(huge), "--vram", "1G", "--prompt", "hi", "--max-tokens", "2")
    assert code == 0, err[-2000:]
    assert seconds < 30
    code, err, _ = _edgekv_2g("run", str(huge), "--prompt", "hi", "--max-tokens", "2")  # no cap: the 2 GiB limit's
    assert code in (0, 1) and "bad_alloc" not in err, err[-2000:]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["eval", "TINY", "--dataset", "synth", "--limit", "1000000"], "--limit 1000000 is outside the 1..100000"),
        (["calibrate", "RESULTS", "--bootstrap", "10000000"], "--bootstrap 10000000 is outside the 0..100000"),
        (["bench", "TINY", "--reps", "1000000000"], "--reps 1000000000 is outside the 1..1000"),
        (["sweep", "--vram", "8G", "--dataset", "synth", "--slots", "512", "--dry-run"], "--slots 512 is outside"),
        (["sweep", "--vram", "8G", "--dataset", "synth", "--samples", "1,300", "--dry-run"], "--samples 300 is out"),
        (["bench", "TINY", "--parallel", "1,257"], "--parallel 257 is outside the 1..256 sequences"),
    ],
)
def test_counts_that_blew_up_are_refused_at_once(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, str], no_llama: None, args: list[str], says: str
) -> None:
    """`eval --limit 1000000` reached 4.5 GB in a minute (and 491k warning lines); `calibrate --bootstrap
    10000000` 2.4 GB; sweep's --slots 512 and --samples 300 passed LLAMA_MAX_SEQ to llama.cpp."""
    t0 = time.monotonic()
    code, err = edgekv(capsys, *[inputs.get(a, a) for a in args])
    assert code == 2 and says in err, err
    assert time.monotonic() - t0 < 5


def test_host_budget_is_within_the_address_space_limit() -> None:
    """Without --vram a CPU run's budget is the available memory, within `ulimit -v` (so the pre-flight
    refuses what the limit cannot hold, rather than a failed allocation in llama.cpp)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
            "from edgekv.llama.session import host_memory_bytes; print(host_memory_bytes())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 0 < int(out) < 3 << 30
