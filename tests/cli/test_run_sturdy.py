"""Issue #28, ``edgekv run``: what a user sees of the context and of why an answer ended; where the
prompt comes from (stdin, or a usage error), stdin that is not UTF-8, and flags that exclude each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekv.cli import main

pytest.importorskip("llama_cpp")


def edgekv_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``edgekv ARGS`` through main(), the console entry point."""
    code: Any = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return (code if isinstance(code, int) else 1), out, err


def edgekv_proc(*args: object, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """``python -m edgekv ARGS`` with ``stdin`` as bytes (None: /dev/null)."""
    env = dict(os.environ, EDGEKV_DEBUG="0", COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *[str(a) for a in args]],
        input=stdin if stdin is not None else b"", capture_output=True, timeout=timeout, env=env,
    )  # fmt: skip


# --- 1. the context used and why an answer ended ----------------------------------------------------


def test_header_shows_the_context_llama_cpp_made_not_the_one_asked(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    """--ctx 300: llama.cpp rounds each sample's share up to a multiple of 256 (512 cells); the header
    said "300 tokens"."""
    code, _out, err = edgekv_main(capsys, "run", tiny, "--ctx", "300", "--prompt", "hi", "--max-tokens", "2",
                                  "--threads", "1")  # fmt: skip
    assert code == 0, err
    head = next(ln for ln in err.splitlines() if ln.startswith(f"{tiny.name}: "))
    assert "context 512 tokens (asked 300;" in head


def test_header_shows_the_context_per_sample(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """--ctx 1000 --parallel 3: 1000 / 3 = 333 per sample, rounded up to 512, so 3 x 512 = 1536 in all."""
    code, _out, err = edgekv_main(capsys, "run", tiny, "--ctx", "1000", "--parallel", "3", "--prompt", "hi",
                                  "--max-tokens", "2", "--threads", "1")  # fmt: skip
    assert code == 0, err
    head = next(ln for ln in err.splitlines() if ln.startswith(f"{tiny.name}: "))
    assert "context 1536 tokens, 512 per sample (asked 1000;" in head


def test_answer_cut_at_the_token_limit_says_so(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    code, _out, err = edgekv_main(capsys, "run", tiny, "--ctx", "512", "--prompt", "hi", "--max-tokens", "3",
                                  "--threads", "1", "--temperature", "0")  # fmt: skip
    assert code == 0, err
    assert "ended: token limit (--max-tokens 3)" in err


def test_answer_cut_at_the_context_says_so_in_text_and_json(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """A 256-cell context and --max-tokens 500: the answer stops where the context is full."""
    args = ["run", tiny, "--ctx", "256", "--prompt", "hi", "--max-tokens", "500", "--threads", "1",
            "--temperature", "0"]  # fmt: skip
    code, _out, err = edgekv_main(capsys, *args)
    assert code == 0, err
    assert "ended: context full (256 tokens per sample)" in err
    code, out, err = edgekv_main(capsys, *args, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["context"] == {"asked": 256, "used": 256, "per_sample": 256}
    assert d["max_tokens"] == 500
    (sample,) = d["turns"][0]["samples"]
    assert sample["finish"] == "context" and sample["ended"] == "context full"
    # every one of the 256 cells holds a token, and the last token sampled from them ends the answer
    assert d["turns"][0]["n_prompt"] + sample["n_tokens"] == 256 + 1


def test_json_context_used_differs_from_the_one_asked(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    code, out, err = edgekv_main(capsys, "run", tiny, "--ctx", "300", "--prompt", "hi", "--max-tokens", "2",
                                 "--threads", "1", "--json")  # fmt: skip
    assert code == 0, err
    d = json.loads(out)
    assert d["context"] == {"asked": 300, "used": 512, "per_sample": 512}
    assert d["turns"][0]["samples"][0]["ended"] == "token limit"


def test_each_samples_end_is_named() -> None:
    """Three samples of one prompt that ended three ways (the test models here never write their end
    token within a test's time, so the samples are written out): each reason names its samples."""
    from edgekv.llama.generation import Generation, SequenceOutput
    from edgekv.report.run import ended_text

    seqs = (SequenceOutput((1, 2), "a", "length"), SequenceOutput((1,), "b", "eog"),
            SequenceOutput((1, 2), "c", "length"), SequenceOutput((1, 2, 3), "d", "context"))  # fmt: skip
    gen = Generation(seqs, n_prompt=5, n_prompt_evaluated=5, prompt_seconds=1.0, decode_seconds=1.0)
    assert ended_text(gen, max_tokens=2, n_ctx_seq=8) == (
        "ended: token limit (--max-tokens 2): samples 1, 3; end of text: sample 2; "
        "context full (8 tokens per sample): sample 4"
    )
    one = Generation(seqs[1:2], n_prompt=5, n_prompt_evaluated=5, prompt_seconds=1.0, decode_seconds=1.0)
    assert ended_text(one, max_tokens=2, n_ctx_seq=8) == "ended: end of text"


# --- 2. where the prompt comes from -----------------------------------------------------------------


def test_no_prompt_and_empty_stdin_is_a_usage_error(tiny: Path) -> None:
    """`run MODEL` with nothing on stdin generated 512 tokens from an empty prompt (exit 0)."""
    r = edgekv_proc("run", tiny, "--threads", "1", stdin=b"")
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "no prompt" in err and "--prompt" in err and "stdin" in err
    assert "Traceback" not in err and "memory: predicted" not in err


@pytest.mark.parametrize("prompt", ["", "  \n"])
def test_empty_prompt_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str], tiny: Path, prompt: str) -> None:
    code, _out, err = edgekv_main(capsys, "run", tiny, "--prompt", prompt)
    assert code == 2 and "--prompt is empty" in err


def test_prompt_is_read_from_stdin(tiny: Path) -> None:
    r = edgekv_proc("run", tiny, "--ctx", "512", "--max-tokens", "2", "--threads", "1", "--json", stdin=b"2+2?\n")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["turns"][0]["n_prompt"] > 0


@pytest.mark.parametrize("chat", [False, True])
def test_stdin_not_utf8_is_one_line(tiny: Path, chat: bool) -> None:
    """Bytes that are not UTF-8 on stdin were "internal error (UnicodeDecodeError ...)"."""
    flags = ["--chat"] if chat else []
    r = edgekv_proc("run", tiny, "--ctx", "512", "--max-tokens", "2", "--threads", "1", *flags,
                    stdin=b"hello\ncaf\xe9 au lait\n")  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 1, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert lines == ["error: stdin line 2 is not UTF-8 text (byte 0xe9 at column 4). Pass UTF-8 text "
                     "(iconv -f latin1 -t utf-8 converts a Latin-1 file)"], err  # fmt: skip
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["pick", "--vram", "8G", "--gguf", "TINY", "--repo", "Qwen/Qwen3-8B-GGUF"], ("--gguf", "--repo")),
        (["pick", "--vram", "8G", "--gguf", "TINY", "--model", "Qwen3-8B"], ("--gguf", "--model")),
        (["download", "--vram", "8G", "--gguf", "TINY", "--repo", "Qwen/Qwen3-8B-GGUF"], ("--gguf", "--repo")),
        (["download", "a/b", "--repo", "c/d", "--vram", "8G"], ("REPO_ID", "--repo")),
        (["download", "a/b", "--quant", "Q8_0", "--file", "x.gguf"], ("--quant", "--file")),
        (["run", "TINY", "--chat", "--raw"], ("--chat", "--raw")),
        (["run", "TINY", "--prompt", "hi", "--greedy", "--temperature", "0.7"], ("--greedy", "--temperature")),
        (["sweep", "--vram", "8G", "--dataset", "synth", "--gguf", "TINY", "--models", "Qwen3-8B", "--dry-run"],
         ("--gguf", "--models")),
        (["bench", "TINY", "--parallel", "1,2", "--depth", "1k"], ("--parallel", "--depth")),
        (["bench", "TINY", "--parallel", "1,2", "--csv"], ("--parallel", "--csv")),
        (["bench", "TINY", "--json", "--csv"], ("--json", "--csv")),
    ],
)  # fmt: skip
def test_flags_that_exclude_each_other_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], tiny: Path, args: list[str], names: tuple[str, str]
) -> None:
    """`pick --gguf X --repo Y` ranked X and ignored Y (exit 0)."""
    code, _out, err = edgekv_main(capsys, *[str(tiny) if a == "TINY" else a for a in args])
    assert code == 2, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert all(n in line for n in names), line
    assert "cannot be used together" in line
