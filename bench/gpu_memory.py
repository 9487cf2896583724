"""GPU memory facts for the memory model, measured on a CUDA build of llama-cpp-python.

Part A (compute): for every catalog model, a GGUF of its real shapes (sparse zeros, the per-tensor
types llama.cpp's quantize rules give Q4_K_M) is dry-run with no_alloc + load mode NONE, and the
logged CUDA compute buffer is recorded for n_ubatch 512, flash attention on and off (off at
several contexts, since the attention scores grow with n_ctx). Also: whether a header-only file
(no data section at all) is enough for the dry run.
Part B (vram): Qwen3-4B shapes at F16 / Q8_0 / Q4_K_M x KV f16 / q8_0 / q4_0 x n_ctx 4096 /
32768, full offload, each in a fresh process: load, a 64-token prompt and 16 decode steps, then
NVML's figure for the process against edgekv's prediction (every term, margin 0).

usage (GPU machine, after .gpu/build-cuda.sh):
  PYTHONPATH=/tmp/site:. python3 bench/gpu_memory.py --out bench/results [--parts compute,vram]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgekv.store.catalog import load_catalog  # noqa: E402

SHAPES = Path(os.environ.get("EDGEKV_SHAPES", "/tmp/edgekv-shapes"))


def write_sparse_quant(path: Path, config: dict[str, Any], quant: str, *, header_only: bool = False) -> Path:
    """A loadable GGUF of the config's real shapes with ``quant``'s per-tensor types, zero data."""
    from tests.ggufgen import write_sparse_gguf

    if path.exists():
        return path
    return write_sparse_gguf(path, config, quant=quant, header_only=header_only)


class LogCapture:
    """llama.cpp's log lines, through llama_log_set (kept alive while the capture lives)."""

    def __init__(self) -> None:
        import llama_cpp

        self.lines: list[str] = []

        @llama_cpp.llama_log_callback
        def cb(level: int, text: bytes, user: Any) -> None:
            self.lines.append(text.decode(errors="replace"))

        self._cb = cb
        llama_cpp.llama_log_set(cb, ctypes.c_void_p())

    def mib(self, needle: str) -> float:
        """Sum of 'NEEDLE ... = X MiB' lines since the last clear."""
        total = 0.0
        for line in "".join(self.lines).splitlines():
            if needle in line and "MiB" in line:
                total += float(line.split("=")[-1].split("MiB")[0])
        return total


def dry_run(path: Path, *, n_ctx: int, flash_attn: bool, type_kv: int = 1, n_ubatch: int = 512) -> dict[str, Any]:
    import llama_cpp

    log = LogCapture()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 999
    mp.no_alloc = True
    mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    t0 = time.perf_counter()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    if not model:
        return {"ok": False, "error": (log.lines[-1] if log.lines else "load failed").strip()}
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, 2048, n_ubatch
    cp.type_k = cp.type_v = type_kv
    cp.flash_attn_type = 1 if flash_attn else 0
    ctx = llama_cpp.llama_init_from_model(model, cp)
    out: dict[str, Any] = {"ok": bool(ctx), "seconds": round(time.perf_counter() - t0, 3)}
    out["cuda_compute_mib"] = log.mib("CUDA0 compute buffer size")
    out["host_compute_mib"] = log.mib("CUDA_Host compute buffer size")
    out["kv_mib"] = log.mib("llama_kv_cache: size")
    if ctx:
        llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return out


def part_compute(out_dir: Path) -> None:
    rows = []
    for m in load_catalog():
        if m.spec.is_moe:  # MoE compute buffers belong with their expert placement (issue 24), not measured here
            continue
        path = write_sparse_quant(SHAPES / f"{m.name}-Q4_K_M.gguf", m.config, "Q4_K_M")
        for fa in (True, False):
            for n_ctx in (4096, 32768) if fa else (4096, 16384, 32768):
                r = dry_run(path, n_ctx=n_ctx, flash_attn=fa)
                r.update(model=m.name, quant="Q4_K_M", n_ctx=n_ctx, flash_attn=fa, n_ubatch=512)
                rows.append(r)
                print(json.dumps(r), flush=True)
    # does the weight type change the compute buffer? (4B at F16 / Q8_0 too)
    m4 = next(m for m in load_catalog() if m.name == "Qwen3-4B")
    for q in ("F16", "Q8_0"):
        path = write_sparse_quant(SHAPES / f"{m4.name}-{q}.gguf", m4.config, q)
        r = dry_run(path, n_ctx=4096, flash_attn=True)
        r.update(model=m4.name, quant=q, n_ctx=4096, flash_attn=True, n_ubatch=512)
        rows.append(r)
        print(json.dumps(r), flush=True)
    # header-only file (no data section): enough for the dry run?
    hpath = write_sparse_quant(SHAPES / "Qwen3-4B-Q4_K_M-header-only.gguf", m4.config, "Q4_K_M", header_only=True)
    r = dry_run(hpath, n_ctx=4096, flash_attn=True)
    r.update(model="Qwen3-4B", quant="Q4_K_M", header_only=True, file_bytes=hpath.stat().st_size)
    rows.append(r)
    print(json.dumps(r), flush=True)
    (out_dir / "compute.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))


VRAM_CHILD = r"""
import ctypes, json, os, sys, time
sys.path.insert(0, os.environ["EDGEKV_ROOT"])
import llama_cpp, pynvml
from bench.gpu_memory import LogCapture
path, n_ctx, tk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = LogCapture()
pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0)
def proc_bytes():
    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
        if p.pid == os.getpid(): return p.usedGpuMemory
    return 0
mp = llama_cpp.llama_model_default_params(); mp.n_gpu_layers = 999
model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
cp = llama_cpp.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.type_k, cp.type_v, cp.flash_attn_type = n_ctx, 2048, 512, tk, tk, 1
ctx = llama_cpp.llama_init_from_model(model, cp)
after_load = proc_bytes()
toks = (llama_cpp.llama_token * 64)(*range(10, 74))
rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(toks, 64))
for i in range(16):
    one = (llama_cpp.llama_token * 1)(100 + i)
    rc |= llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1))
llama_cpp.llama_synchronize(ctx)
print(json.dumps({"rc": rc, "after_load": after_load, "after_decode": proc_bytes(),
  "model_mib": log.mib("CUDA0 model buffer size"), "kv_mib": log.mib("CUDA0 KV buffer size"),
  "compute_mib": log.mib("CUDA0 compute buffer size")}))
"""


def part_vram(out_dir: Path) -> None:
    from edgekv.model.gguf_reader import read_spec
    from edgekv.model.quant import KvType
    from edgekv.plan.memory import RunConfig, footprint

    m4 = next(m for m in load_catalog() if m.name == "Qwen3-4B")
    rows = []
    for q in ("F16", "Q8_0", "Q4_K_M"):
        path = write_sparse_quant(SHAPES / f"{m4.name}-{q}.gguf", m4.config, q)
        spec = read_spec(path)
        for kv in (KvType.F16, KvType.Q8_0, KvType.Q4_0):
            for n_ctx in (4096, 32768):
                cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, flash_attn=True)
                dr = dry_run(path, n_ctx=n_ctx, flash_attn=True, type_kv=kv.ggml.id)
                compute = round(dr["cuda_compute_mib"] * 2**20)
                fp = footprint(spec, cfg, compute_bytes=compute, margin_bytes=0)
                env = dict(os.environ, EDGEKV_ROOT=str(ROOT))
                res = subprocess.run(
                    [sys.executable, "-c", VRAM_CHILD, str(path), str(n_ctx), str(kv.ggml.id)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=300,
                )
                child = (
                    json.loads(res.stdout.strip().splitlines()[-1])
                    if res.returncode == 0
                    else {"error": res.stderr[-500:]}
                )
                measured = child.get("after_decode", 0)
                row = {
                    "model": m4.name, "quant": q, "type_k": kv.value, "type_v": kv.value, "n_ctx": n_ctx,
                    "predicted": fp.as_dict(), "predicted_total": fp.gpu_total, "measured_process": measured,
                    "diff_mib": round((measured - fp.gpu_total) / 2**20, 1),
                    "within": abs(measured - fp.gpu_total) <= max(0.02 * fp.gpu_total, 64 * 2**20),
                    "predicted_weights_mib": round(fp.weights_gpu / 2**20, 2),
                    "predicted_kv_mib": round(fp.kv / 2**20, 2),
                    **{f"log_{k}": v for k, v in child.items()},
                }  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    (out_dir / "vram.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--parts", default="compute,vram")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    SHAPES.mkdir(parents=True, exist_ok=True)
    import llama_cpp

    info = {"llama_cpp": llama_cpp.__version__, "system": llama_cpp.llama_print_system_info().decode(),
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload())}  # fmt: skip
    print(json.dumps(info), flush=True)
    (out / "gpu_info.json").write_text(json.dumps(info, indent=1))
    parts = args.parts.split(",")
    if "compute" in parts:
        part_compute(out)
    if "vram" in parts:
        part_vram(out)


if __name__ == "__main__":
    main()
