"""The GPU grid: weights x KV type x context under an emulated VRAM cap, predicted vs NVML-measured.

A real Qwen3 shape (models/<shape>.json) with zero weights: a sparse F16 GGUF
(tests/ggufgen.write_sparse_gguf), quantized to Q8_0 and Q4_K_M with llama_model_quantize.
Each configuration runs ``edgekv bench`` in a fresh process (its own CUDA context and cap
reservation) and its records are appended to bench/results/gpu_grid.jsonl, with the weight
quant and shape added. One configuration past the cap shows the refusal.

On the GPU machine, from the project root, after .gpu/build-cuda.sh:
    PYTHONPATH=/tmp/site:. python3 bench/gpu_grid.py
    PYTHONPATH=/tmp/site:. python3 bench/gpu_grid.py --shape qwen3-4b --ctx 4096,16384 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.units import MIB, parse_size  # noqa: E402


def make_models(shape: str, quants: list[str], workdir: Path) -> dict[str, Path]:
    """The shape's GGUF at each weight quant (reused when already there)."""
    from edgekv.llama.quantize import quantize_gguf
    from tests.ggufgen import write_sparse_gguf

    config = json.loads((ROOT / "models" / f"{shape}.json").read_text())["config"]
    workdir.mkdir(parents=True, exist_ok=True)
    f16 = workdir / f"{shape}-F16.gguf"
    if not f16.is_file():
        write_sparse_gguf(f16, config, outtype="F16")
    out: dict[str, Path] = {}
    for q in quants:
        path = f16 if q == "F16" else workdir / f"{shape}-{q}.gguf"
        if not path.is_file():
            t0 = time.time()
            quantize_gguf(f16, path, q, threads=os.cpu_count())
            print(f"quantized {path.name} in {time.time() - t0:.0f} s", flush=True)
        out[q] = path
    return out


def bench_one(model: Path, kv: str, n_ctx: int, args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    """``edgekv bench`` for one configuration in a fresh process: its records and stderr."""
    depths = sorted({0, max(n_ctx - 1024 - args.n_prompt, 0)}) if args.deep else [0]
    cmd = [
        sys.executable, "-m", "edgekv", "bench", str(model), "--kv", kv, "--ctx", str(n_ctx), "--vram", args.cap,
        "--depth", ",".join(map(str, depths)), "--n-prompt", str(args.n_prompt), "--n-gen", str(args.n_gen),
        "--reps", str(args.reps), "--json",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=args.timeout)
    if r.returncode != 0:
        return [], r.stderr[-3000:]
    return json.loads(r.stdout), r.stderr[-2000:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen3-1.7b", help="models/<shape>.json (qwen3-1.7b, qwen3-4b, ...)")
    ap.add_argument("--quants", default="F16,Q8_0,Q4_K_M")
    ap.add_argument("--kv", default="f16,q8_0,q4_0")
    ap.add_argument("--ctx", default="4096,32768")
    ap.add_argument("--cap", default="8G")
    ap.add_argument("--over", default="F16:f16:40960", help="weights:kv:n_ctx of the configuration past the cap")
    ap.add_argument("--n-prompt", type=int, default=512)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--deep", action="store_true", help="also time decode with the context nearly full")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgekv-gpu-grid")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_grid.jsonl")
    args = ap.parse_args()

    quants = [q.strip() for q in args.quants.split(",") if q.strip()]
    models = make_models(args.shape, quants, args.workdir)
    grid = [(q, kv, int(n)) for q in quants for kv in args.kv.split(",") for n in args.ctx.split(",")]
    over_q, over_kv, over_ctx = args.over.split(":")
    if over_q in models:
        grid.append((over_q, over_kv, int(over_ctx)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cap_bytes = parse_size(args.cap)
    print(f"{'weights':8} {'kv':5} {'n_ctx':>6} {'depth':>6} {'status':8} {'pred MiB':>9} {'NVML MiB':>9} "
          f"{'delta':>7} {'pp t/s':>8} {'tg t/s':>7}", flush=True)  # fmt: skip
    n_bad = 0
    for q, kv, n_ctx in grid:
        t0 = time.time()
        rows, err = bench_one(models[q], kv, n_ctx, args)
        if not rows:
            n_bad += 1
            print(f"{q:8} {kv:5} {n_ctx:>6} {'':>6} FAILED   {err.strip().splitlines()[-1] if err.strip() else ''}")
            rows = [{"model": models[q].name, "type_k": kv, "type_v": kv, "n_ctx": n_ctx, "status": "failed",
                     "reason": err}]  # fmt: skip
        with args.out.open("a") as f:
            for row in rows:
                row.update(weights=q, shape=args.shape, cap_bytes=cap_bytes, seconds=round(time.time() - t0, 1))
                f.write(json.dumps(row) + "\n")
                pred, meas = row.get("predicted") or {}, row.get("measured") or {}
                proc = meas.get("process")
                delta = f"{(proc - pred['total']) / MIB:+.0f}" if proc is not None and pred else ""
                pp, tg = row.get("prompt_tps") or {}, row.get("decode_tps") or {}
                print(
                    f"{q:8} {kv:5} {n_ctx:>6} {row.get('depth', ''):>6} {row['status']:8} "
                    f"{pred.get('total', 0) / MIB:>9.0f} {(proc or 0) / MIB:>9.0f} {delta:>7} "
                    f"{pp.get('median', 0):>8.0f} {tg.get('median', 0):>7.1f}",
                    flush=True,
                )
                if row["status"] == "ok" and proc is not None and proc > cap_bytes:
                    n_bad += 1
                    print(f"  over the cap: {proc / MIB:.0f} MiB > {cap_bytes / MIB:.0f} MiB")
    print(f"records appended to {args.out}")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
