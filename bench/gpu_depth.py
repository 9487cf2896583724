"""Decode speed at depth for f16, q8_0 and q4_0 KV: llama-bench and edgekv bench side by side (#14).

The Qwen3-4B Q8_0 shape (zero weights, as bench/gpu_batched.py writes it), flash attention, one
sequence, 64 decode steps after filling the KV cache to each depth (0, 8k, 32k), llama-bench's
``-d`` and ``edgekv bench --depth`` in one run. A quantized KV is reported slower at long contexts
elsewhere; this measures it on this build. Records go to OUT/depth.jsonl, a table to stdout.

On the GPU machine, after .gpu/build-cuda.sh and build-llama-tools.sh:
    PYTHONPATH=/tmp/site:. python3 bench/gpu_depth.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_batched import model_file  # noqa: E402

KV = ["f16", "q8_0", "q4_0"]
DEPTHS = [0, 8192, 32768]


def llama_bench(tools: Path, model: Path, kv: str, n_gen: int, reps: int, device: int) -> list[dict[str, Any]]:
    cmd = [str(tools / "llama-bench"), "-m", str(model), "-ngl", "99", "-fa", "1", "-ctk", kv, "-ctv", kv,
           "-p", "0", "-n", str(n_gen), "-d", ",".join(map(str, DEPTHS)), "-r", str(reps), "-o", "jsonl"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(device)))  # fmt: skip
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or not rows:
        raise SystemExit(f"llama-bench failed ({r.returncode}): {r.stderr[-1500:]}")
    return rows


def edgekv_bench(model: Path, n_gen: int, reps: int, device: int) -> list[dict[str, Any]]:
    ctx = max(DEPTHS) + n_gen + 512
    cmd = [sys.executable, "-m", "edgekv", "bench", str(model), "--kv", ",".join(KV), "--ctx", str(ctx),
           "--depth", ",".join(map(str, DEPTHS)), "--n-prompt", "0", "--n-gen", str(n_gen), "--reps", str(reps),
           "--json", "--no-store"]  # fmt: skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(device))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"edgekv bench failed ({r.returncode}): {r.stderr[-1500:]}")
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tools", type=Path, default=Path("/tmp/lcpp/build/bin"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgekv-shapes"))
    ap.add_argument("--shape", default="qwen3-4b:Q8_0")
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--device", type=int, default=0)
    args = ap.parse_args()
    shape, quant = args.shape.split(":")
    model = model_file(shape, quant, args.workdir)
    rows: list[dict[str, Any]] = []
    ref: dict[tuple[str, int], float] = {}
    for kv in KV:
        for r in llama_bench(args.tools, model, kv, args.n_gen, args.reps, args.device):
            rows.append({"tool": "llama-bench", "shape": shape, "quant": quant, **r})
            ref[(kv, int(r["n_depth"]))] = float(r["avg_ts"])
    mine = edgekv_bench(model, args.n_gen, args.reps, args.device)
    rows += [{"tool": "edgekv", "shape": shape, "quant": quant, **r} for r in mine]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "depth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{shape} {quant}, flash attention, G = 1, {args.n_gen} decode steps at each depth (tokens/s)")
    print("| KV | depth | llama-bench tg | edgekv bench tg | ratio |")
    print("|---|---|---|---|---|")
    for r in mine:
        dec = r.get("decode_tps") or {}
        tps, base = dec.get("median"), ref.get((r["type_k"], r["depth"]))
        if r.get("status") == "ok" and tps and base:
            print(f"| {r['type_k']} | {r['depth']} | {base:.1f} | {tps:.1f} | {tps / base:.3f} |")
        else:
            print(f"| {r['type_k']} | {r['depth']} | {base or ''} | {r.get('status')}: {r.get('reason')} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
