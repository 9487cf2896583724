"""Decode tokens/s on the GPU machine for the speed model's grid (#24), in llama.cpp's own loop.

Shapes: dense Qwen3-4B/8B/14B (Q4_K_M), Qwen3-30B-A3B (Q4_K_M) and gpt-oss-20b (MXFP4_MOE), the
two MoE shapes with their experts on the GPU and on the CPU (``-ot exps=CPU``, llama.cpp's
``--cpu-moe``); KV f16, q8_0, q4_0; depth 128, 8k, 32k tokens per sample; G = 1, 4, 16 samples.
Models are sparse GGUFs of the real shapes (bench/sparse_gguf.py: random embeddings and routers,
so the experts read vary per token and per sample as in real use).

The loop is llama-batched-bench's (tools/batched-bench/batched-bench.cpp, non-shared KV streams,
``-pps``: the prompt decoded once in sample 0 and copied to the others with
``llama_memory_seq_cp``, then G random tokens per step, one ``llama_decode`` + synchronize per
step), run through llama-cpp-python's C bindings on the same libllama so that one model load and
one context serve all depths and G of a KV type: the prompt is extended from 128 to 8k to 32k in
sample 0, so each (shape, KV) prefills 32k tokens once instead of nine times (the GPU time this
saves is what lets the whole grid run in one 10-minute call). Timed: ``--steps`` steps after 3
warm-up steps (the first applies the stream copies); tokens/s = G / median step time.

A context for 16 streams of 32k + steps cells is tried first; where it does not fit on the card
(f16 KV of the dense shapes on an 80 GB H100), one of 4 streams is used and the G = 16 rows of that
KV type are left out (recorded as ``skipped``).

On the GPU machine (libllama from the cached CUDA build, see .gpucache/README):
    LLAMA_CPP_LIB_PATH=... PYTHONPATH=/tmp/site:. python3 bench/gpu_speed_grid.py --out $OUT
Rows are appended to OUT/speed_grid.jsonl as they are measured; ``--done FILE`` skips the
(shape, placement, KV) groups already complete in an earlier run's file.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = [
    ("qwen3-4b", "Q4_K_M", "gpu"),
    ("qwen3-8b", "Q4_K_M", "gpu"),
    ("qwen3-14b", "Q4_K_M", "gpu"),
    ("qwen3-30b-a3b", "Q4_K_M", "gpu"),
    ("gpt-oss-20b", "MXFP4_MOE", "gpu"),
    ("qwen3-30b-a3b", "Q4_K_M", "cpu"),
    ("gpt-oss-20b", "MXFP4_MOE", "cpu"),
]
KVS = ["q8_0", "f16", "q4_0"]
DEPTHS = [128, 8192, 32768]
GS = [1, 4, 16]
EXPS_REGEX = b"\\.ffn_(up|down|gate|gate_up)_(ch|)exps"  # llama.cpp common.h LLM_FFN_EXPS_REGEX
GGML_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}
WARMUP = 3


class Bench:
    def __init__(self, lib_dir: Path, threads: int) -> None:
        import llama_cpp

        self.L = llama_cpp
        self.threads = threads
        self.base = ctypes.CDLL(str(lib_dir / "libggml-base.so"))
        self.base.ggml_backend_cpu_buffer_type.restype = ctypes.c_void_p
        self._log = llama_cpp.llama_log_callback(lambda level, text, user_data: None)  # quiet: rows on stdout
        llama_cpp.llama_log_set(self._log, ctypes.c_void_p())
        llama_cpp.llama_backend_init()
        self._keep: list[Any] = []

    def load(self, path: Path, placement: str) -> Any:
        L = self.L
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 999
        if placement == "cpu":

            class Override(ctypes.Structure):
                _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]

            arr = (Override * 2)()
            arr[0].pattern = EXPS_REGEX
            arr[0].buft = self.base.ggml_backend_cpu_buffer_type()
            arr[1].pattern = None
            arr[1].buft = None
            self._keep.append(arr)
            mp.tensor_buft_overrides = ctypes.cast(arr, ctypes.c_void_p).value
        model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not model:
            raise RuntimeError(f"could not load {path}")
        return model

    def context(self, model: Any, *, kv: str, n_seq: int, per_seq: int) -> Any:
        L = self.L
        cp = L.llama_context_default_params()
        cp.n_ctx = n_seq * per_seq
        cp.n_seq_max = n_seq
        cp.n_batch = 2048
        cp.n_ubatch = 2048
        cp.n_threads = self.threads
        cp.n_threads_batch = self.threads
        cp.flash_attn_type = 1  # enabled
        cp.type_k = GGML_TYPES[kv]
        cp.type_v = GGML_TYPES[kv]
        cp.kv_unified = False
        cp.swa_full = False
        cp.no_perf = True
        return L.llama_init_from_model(model, cp)

    def decode(self, ctx: Any, batch: Any, items: list[tuple[int, int, int, bool]]) -> None:
        L = self.L
        batch.n_tokens = len(items)
        for i, (tok, pos, seq, logits) in enumerate(items):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        L.llama_synchronize(ctx)


def run_group(b: Bench, model: Any, n_vocab: int, *, kv: str, steps: int, base: dict[str, Any],
              emit: Any, deadline: float) -> bool:  # fmt: skip
    """All depths and G of one KV type; returns False if the deadline stopped it."""
    L = b.L
    per_seq = DEPTHS[-1] + WARMUP + steps + 64
    n_seq = 16
    ctx = b.context(model, kv=kv, n_seq=16, per_seq=per_seq)
    if not ctx:
        n_seq = 4
        ctx = b.context(model, kv=kv, n_seq=4, per_seq=per_seq)
    if not ctx:
        emit({**base, "kv": kv, "status": "no context"})
        return True
    mem = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(2048, 0, 1)
    rnd = random.Random(0)
    done = 0
    try:
        for depth in DEPTHS:
            t0 = time.time()
            while done < depth:  # extend sample 0's prompt
                n = min(2048, depth - done)
                b.decode(ctx, batch, [(rnd.randrange(n_vocab), done + i, 0, i == n - 1) for i in range(n)])
                done += n
            prefill_s = time.time() - t0
            for g in GS:
                if time.time() > deadline:
                    return False
                row = {**base, "kv": kv, "depth": depth, "G": g, "n_seq_ctx": n_seq}
                if g > n_seq:
                    emit({**row, "status": "skipped: 16 streams of 32k do not fit"})
                    continue
                for s in range(1, g):
                    L.llama_memory_seq_cp(mem, 0, s, -1, -1)
                times = []
                for i in range(WARMUP + steps):
                    items = [(rnd.randrange(n_vocab), depth + i, s, True) for s in range(g)]
                    t = time.perf_counter()
                    b.decode(ctx, batch, items)
                    times.append(time.perf_counter() - t)
                for s in range(1, g):
                    L.llama_memory_seq_rm(mem, s, -1, -1)
                L.llama_memory_seq_rm(mem, 0, depth, -1)
                timed = times[WARMUP:]
                med = statistics.median(timed)
                emit({**row, "status": "ok", "steps": steps, "step_ms_median": 1e3 * med,
                      "step_ms_mean": 1e3 * sum(timed) / len(timed), "tps": g / med,
                      "prefill_s": round(prefill_s, 3)})  # fmt: skip
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    return True


_FACTS = r"""
import json, subprocess, time, torch
f = {"gpu": subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.mem", "--format=csv,noheader"],
                           capture_output=True, text=True).stdout.strip()}
a = torch.empty(2**30, dtype=torch.uint8); a.fill_(1); c = torch.empty_like(a); c.copy_(a)
t = time.perf_counter()
for _ in range(5):
    c.copy_(a)
f["host_copy_gbs"] = round(5 * 2 * 2**30 / (time.perf_counter() - t) / 1e9, 1)  # read + write
x = torch.empty(2**31, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x); y.copy_(x); torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(10):
    y.copy_(x)
torch.cuda.synchronize()
f["gpu_copy_gbs"] = round(10 * 2 * 2**31 / (time.perf_counter() - t) / 1e9, 1)
print(json.dumps(f))
"""


def machine_facts() -> dict[str, Any]:
    """GPU name and measured host- and device-memory copy bandwidths (torch, read + write), for the
    RAM term. In a subprocess: torch's CUDA libraries in the same process as libggml-cuda crash it."""
    import subprocess

    facts: dict[str, Any] = {"nproc": os.cpu_count()}
    r = subprocess.run([sys.executable, "-c", _FACTS], capture_output=True, text=True, timeout=120)
    try:
        facts.update(json.loads(r.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):  # facts are extras: the grid runs without them
        facts["error"] = (r.stderr or r.stdout)[-300:]
    return facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lib", type=Path, default=Path(os.environ.get("LLAMA_CPP_LIB_PATH", "/tmp/lcpp/lib")))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgekv-sparse"))
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--cpu-steps", type=int, default=12, help="timed steps with experts on the CPU")
    ap.add_argument("--seconds", type=float, default=400, help="stop starting new rows after this")
    ap.add_argument("--done", type=Path, help="an earlier speed_grid.jsonl: skip its complete groups")
    ap.add_argument("--only", help="shape:placement[,..] to run")
    ap.add_argument("--depths", help="comma-separated depths (default 128,8192,32768)")
    ap.add_argument("--configs", help="shape:quant:placement[,..] instead of the grid's (a tiny test)")
    ap.add_argument("--models", type=Path, help="read shapes from this folder instead of the catalog (a tiny test)")
    ap.add_argument("--no-facts", action="store_true", help="skip the machine facts (torch; the GPU machine's)")
    a = ap.parse_args()
    if a.depths:
        DEPTHS[:] = [int(x) for x in a.depths.split(",")]
    if a.configs:
        CONFIGS[:] = [tuple(c.split(":")) for c in a.configs.split(",")]  # type: ignore[misc]
    deadline = time.time() + a.seconds
    a.out.mkdir(parents=True, exist_ok=True)
    out = a.out / "speed_grid.jsonl"
    done: set[tuple[str, str, str]] = set()
    if a.done and a.done.is_file():
        n_rows: dict[tuple[str, str, str], int] = {}
        for line in a.done.read_text().splitlines():
            r = json.loads(line)
            if "kv" in r and "depth" in r:
                k = (r["shape"], r["placement"], r["kv"])
                n_rows[k] = n_rows.get(k, 0) + 1
        done = {k for k, n in n_rows.items() if n == len(DEPTHS) * len(GS)}
    facts = {"nproc": os.cpu_count()} if a.no_facts else machine_facts()
    print("machine:", facts, flush=True)

    def emit(row: dict[str, Any]) -> None:
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if row.get("status") == "ok":
            print(f"{row['shape']} {row['placement']} {row['kv']} d{row['depth']} G{row['G']}: "
                  f"{row['tps']:.1f} t/s ({row['step_ms_median']:.2f} ms/step)", flush=True)  # fmt: skip
        else:
            print(row, flush=True)

    emit({"facts": facts, "steps": a.steps, "cpu_steps": a.cpu_steps})
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ here, or a copy of both beside each other
    from sparse_gguf import catalog_config, write_sparse_model

    b = Bench(a.lib, os.cpu_count() or 8)
    only = set(a.only.split(",")) if a.only else None
    for kv in KVS:  # KV-major: a short run still covers every shape and placement at q8_0 first
        for shape, quant, placement in CONFIGS:
            if only and f"{shape}:{placement}" not in only:
                continue
            if (shape, placement, kv) in done or time.time() > deadline:
                continue
            path = a.workdir / f"{shape}-{quant}.gguf"
            if not path.is_file():
                a.workdir.mkdir(parents=True, exist_ok=True)
                t = time.time()
                write_sparse_model(path, catalog_config(shape, a.models), quant=quant)
                print(f"wrote {path.name} in {time.time() - t:.1f} s", flush=True)
            t = time.time()
            model = b.load(path, placement)
            print(f"loaded {shape} experts on {placement} in {time.time() - t:.1f} s", flush=True)
            n_vocab = b.L.llama_vocab_n_tokens(b.L.llama_model_get_vocab(model))
            base = {"shape": shape, "quant": quant, "placement": placement}
            steps = a.cpu_steps if placement == "cpu" else a.steps
            try:
                run_group(b, model, n_vocab, kv=kv, steps=steps, base=base, emit=emit, deadline=deadline)
            finally:
                b.L.llama_model_free(model)
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
