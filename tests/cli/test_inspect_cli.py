"""``edgekv inspect`` through CliRunner, main() and a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.errors import GGUFError, ModelFileNotFound
from edgekv.units import GIB, MIB
from tests.model.test_gguf_reader import BAD_KINDS, bad_file

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, ["inspect", *args])
    return result.exit_code, result.output, result.exception


def test_inspect_json(gemma_gguf: Path) -> None:
    code, out, exc = invoke(str(gemma_gguf), "--json")
    assert code == 0, exc
    d = json.loads(out)
    keys = {"arch", "n_layer", "n_params", "weights_bytes", "tensor_type_bytes", "kv_bytes_per_token", "context_length"}
    assert keys <= set(d)
    assert (d["arch"], d["n_layer"], d["weights_bytes"], d["context_length"]) == ("gemma3", 18, 246_587_904, 32768)
    assert d["n_params"] == 268_098_176
    assert sum(d["tensor_type_bytes"].values()) == d["weights_bytes"]
    # 3 global layers x 1 KV head x 256 x (K + V): f16 2 bytes, q8_0 34/32, q4_0 18/32
    assert d["kv_bytes_per_token"] == {"f16": 3072, "q8_0": 1632, "q4_0": 864}
    assert "max_ctx" not in d


def test_inspect_json_max_ctx(gemma_gguf: Path) -> None:
    code, out, exc = invoke(str(gemma_gguf), "--vram", "2G", "--json")
    assert code == 0, exc
    max_ctx = json.loads(out)["max_ctx"]
    assert set(max_ctx) == {"f16", "q8_0", "q4_0"}
    assert max_ctx["q4_0"] >= max_ctx["q8_0"] >= max_ctx["f16"] > 0
    assert all(t % 256 == 0 and t <= 32768 for t in max_ctx.values())
    # Independent of edgekv's memory model: read the header with gguf-py and size it by hand.
    # Full offload with a tied output: every weight byte is on the GPU once (token_embd's host
    # copy is not). KV with swa_full (llama.cpp's default): all 18 layers x 1 KV head x 256 x
    # (K + V) x 2 bytes per token. Compute with flash attention: the f32 logits and one hidden
    # state for n_ubatch = 512 tokens. --overhead 0 leaves only the 256 MiB margin.
    code, out, exc = invoke(str(gemma_gguf), "--vram", "2G", "--overhead", "0", "--json")
    assert code == 0, exc
    got = json.loads(out)["max_ctx"]["f16"]
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(gemma_gguf)
    field = reader.fields
    n_layer = int(field["gemma3.block_count"].parts[-1][0])
    n_embd = int(field["gemma3.embedding_length"].parts[-1][0])
    n_vocab = len(field["tokenizer.ggml.tokens"].data)
    kv_heads, head_dim = int(field["gemma3.attention.head_count_kv"].parts[-1][0]), 256
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    per_token = n_layer * kv_heads * head_dim * 2 * 2
    compute = 4 * 512 * (n_vocab + n_embd)
    want = (2 * GIB - 256 * MIB - weights - compute) // per_token // 256 * 256
    assert got == min(want, 32768)


def test_inspect_table(gemma_gguf: Path) -> None:
    code, out, exc = invoke(str(gemma_gguf), "--vram", "2G")
    assert code == 0, exc
    assert "gemma3" in out
    assert "effective size" in out and "235.16 MiB (246,587,904 bytes)" in out
    assert "15 of 18 layers, window 512" in out
    assert "max context (full offload)" in out


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_exits_1(kind: str, tmp_path: Path, gemma_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, says = bad_file(kind, tmp_path, gemma_gguf)
    code, _out, exc = invoke(str(path))
    assert code == 1
    assert isinstance(exc, ModelFileNotFound if kind == "missing-path" else GGUFError)
    assert says in str(exc)
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(path)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _subprocess(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from edgekv.cli import main; main()", "inspect", str(path)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=60,
    )  # fmt: skip


def test_subprocess_error_is_one_line(tmp_path: Path, gemma_gguf: Path) -> None:
    path, says = bad_file("truncated-10m", tmp_path, gemma_gguf)
    proc = _subprocess(path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and says in lines[0]


def test_subprocess_debug_shows_traceback(tmp_path: Path, gemma_gguf: Path) -> None:
    path, _ = bad_file("not-gguf", tmp_path, gemma_gguf)
    proc = _subprocess(path, EDGEKV_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "edgekv.errors.GGUFError" in proc.stderr and str(path) in proc.stderr
