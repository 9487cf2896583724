"""``edgekv run`` under an emulated 8 GiB card on a big GPU: the cap holds and NVML agrees with the model.

Qwen3-1.7B's real shape (models/qwen3-1.7b.json) with zero weights (a sparse F16 GGUF from
tests/ggufgen.write_sparse_gguf, quantized to Q8_0 and Q4_K_M with llama_model_quantize), x KV
f16/q8_0/q4_0 x n_ctx 4096/32768: 18 runs, each in a fresh process (its own CUDA context and
reservation). Every record is appended to bench/results/gpu_cap.jsonl.

Run on the GPU machine (a CUDA build of llama-cpp-python): pytest -m gpu tests/gpu/test_gpu_cap.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ggufgen import write_sparse_gguf

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "gpu_cap.jsonl"
SHAPE = "qwen3-1.7b"
CAP = "8G"
CAP_BYTES = 8 << 30
MIB = 1 << 20
QUANTS = ("F16", "Q8_0", "Q4_K_M")
KV_TYPES = ("f16", "q8_0", "q4_0")
CONTEXTS = (4096, 32768)


def edgekv(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``python -m edgekv ...`` in a fresh process, so each run has its own CUDA context and cap."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-m", "edgekv", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def record(row: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgekv.llama.quantize import quantize_gguf

    config = json.loads((ROOT / "models" / f"{SHAPE}.json").read_text())["config"]
    d = tmp_path_factory.mktemp("qwen3-shape")
    f16 = write_sparse_gguf(d / f"{SHAPE}-F16.gguf", config, outtype="F16")
    out = {"F16": f16}
    for q in QUANTS[1:]:
        out[q] = quantize_gguf(f16, d / f"{SHAPE}-{q}.gguf", q, threads=os.cpu_count())
    return out


@pytest.mark.parametrize("n_ctx", CONTEXTS)
@pytest.mark.parametrize("kv", KV_TYPES)
@pytest.mark.parametrize("quant", QUANTS)
def test_capped_run_matches_prediction(ggufs: dict[str, Path], quant: str, kv: str, n_ctx: int) -> None:
    t0 = time.time()
    # A real reasoning prompt is dozens of tokens: with f16 weights llama.cpp then takes its
    # cuBLAS path, whose workspace is part of the measured overhead (178 vs 80 MiB).
    prompt = " ".join(["Prove that the sum of two even numbers is even."] * 8)
    r = edgekv("run", str(ggufs[quant]), "--vram", CAP, "--kv", kv, "--ctx", str(n_ctx), "--prompt", prompt,
               "--raw", "--max-tokens", "8", "--greedy", "--json")  # fmt: skip
    row: dict[str, Any] = {
        "test": "capped_run", "shape": SHAPE, "weights": quant, "type_k": kv, "type_v": kv, "n_ctx": n_ctx,
        "cap_bytes": CAP_BYTES, "rc": r.returncode, "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    if r.returncode != 0:
        row["stderr"] = r.stderr[-2000:]
        record(row)
        pytest.fail(f"edgekv run failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
    d = json.loads(r.stdout)
    pred, meas = d["predicted"], d["measured"]
    process = meas["process"]
    row.update(predicted=pred, measured=meas, device=d["device"], build=d["build"], turns=d["turns"])
    if process is not None:
        row["delta_bytes"] = process - pred["total"]
    record(row)
    assert d["gpu"] is True
    assert meas["process_source"] == "nvml" and process is not None, "NVML gave no figure for this process"
    assert process <= CAP_BYTES, f"process holds {process / MIB:.0f} MiB, over the {CAP} cap"
    tolerance = max(0.02 * pred["total"], 64 * MIB)
    assert abs(process - pred["total"]) <= tolerance, (
        f"NVML {process / MIB:.0f} MiB vs predicted {pred['total'] / MIB:.0f} MiB "
        f"(weights {pred['weights'] / MIB:.0f}, kv {pred['kv'] / MIB:.0f}, compute {pred['compute'] / MIB:.0f}, "
        f"overhead {pred['overhead'] / MIB:.0f}; buffers model {meas['model'] / MIB:.0f}, kv {meas['kv'] / MIB:.0f}, "
        f"compute {meas['compute'] / MIB:.0f})"
    )
    assert abs(meas["kv"] - pred["kv"]) <= 0.0051 * MIB  # one CUDA0 KV buffer, printed to 0.01 MiB
    assert abs(meas["compute"] - pred["compute"]) <= MIB  # the dry run measured what the real load allocated
    assert d["turns"][0]["samples"][0]["n_tokens"] == 8


def test_over_the_cap_is_refused_before_loading(ggufs: dict[str, Path]) -> None:
    """F16 weights with an f16 KV at the trained 40960 tokens need ~8.6 GiB: refused, nothing loaded."""
    t0 = time.time()
    r = edgekv("run", str(ggufs["F16"]), "--vram", CAP, "--kv", "f16", "--ctx", "40960", "--prompt", "hi", "--raw")
    record({"test": "over_cap", "shape": SHAPE, "weights": "F16", "type_k": "f16", "type_v": "f16", "n_ctx": 40960,
            "cap_bytes": CAP_BYTES, "rc": r.returncode, "stderr": r.stderr[-2000:],
            "seconds": round(time.time() - t0, 1)})  # fmt: skip
    assert r.returncode == 1
    assert "short" in r.stderr and "--vram 8G leaves 8.00 GiB" in r.stderr
    assert "memory: predicted vs measured" not in r.stderr


def test_mixed_kv_pair_needs_the_kernels(ggufs: dict[str, Path]) -> None:
    """Without GGML_CUDA_FA_QUANTS=all a q8_0/q4_0 pair is refused before loading, with the rebuild hint."""
    from edgekv.llama import build

    info = build.system_info()
    pairs = build.cuda_fa_pairs(info)
    r = edgekv("run", str(ggufs["Q4_K_M"]), "--vram", CAP, "--type-k", "q8_0", "--type-v", "q4_0", "--ctx", "4096",
               "--prompt", "hi", "--raw", "--max-tokens", "2", "--json")  # fmt: skip
    if pairs is None or ("q8_0", "q4_0") in pairs:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and "flash-attention kernel" in r.stderr and "GGML_CUDA_FA_QUANTS" in r.stderr


def test_reserve_cap_leaves_the_cap() -> None:
    """In-process: after the reservation the card shows about cap - context free."""
    from edgekv.llama import vram

    vram.find_cudart().cudaFree(None)  # this process's CUDA context exists before the "before" reading
    info = vram.gpu_info()
    assert info is not None and info.free_bytes > CAP_BYTES
    with vram.reserve_cap(CAP_BYTES) as cap:
        assert cap.emulated
        after = vram.gpu_info()
        assert after is not None
        # the reservation took what the card had beyond the cap (less this process's context)
        assert abs((info.free_bytes - after.free_bytes) - cap.reserved_bytes) < 64 * MIB
        assert abs(cap.reserved_bytes - (cap.free_bytes - (CAP_BYTES - cap.context_bytes))) <= 0
        held = cap.measured_bytes()
        assert held is not None and abs(held - cap.context_bytes) < 64 * MIB
