"""llama.cpp's own llama-batched-bench on real model shapes (zero weights), for two uses:

- ``anchor`` (parallel samples at llama.cpp's speed): a shared 256-token prompt, 256 generated
  tokens per sample, G = 1, 2, 4, 8, 16, q8_0 KV, flash attention, for the Qwen3-4B Q8_0 and
  Qwen3-8B Q4_K_M shapes. With ``--edgekv`` the same settings run through ``edgekv bench
  --parallel`` in the same process tree, alternating with llama-batched-bench per G (before and
  after edgekv's run: the anchor is their mean), and the ratio edgekv / llama.cpp is printed per G.
- ``speed`` (predicted decode speed): Qwen3-4B/8B/14B shapes x Q8_0/Q4_K_M x depth (128, 8192
  tokens per sequence) x G (1, 4), q8_0 KV, not shared prompts: llama.cpp's S_TG, the weights
  and KV bytes per token of each, for ``bench/speed_check.py`` to compare with plan.speed.

The models are sparse GGUFs written at the final quant types (tests/ggufgen.write_sparse_gguf):
llama.cpp reads and computes on zeros at full speed, so the timings are those of the real shape.

On the GPU machine, from the project root, after .gpu/build-cuda.sh and build-llama-tools.sh:
    PYTHONPATH=/tmp/site:. python3 bench/gpu_batched.py anchor --out $OUT [--edgekv]
    PYTHONPATH=/tmp/site:. python3 bench/gpu_batched.py speed --out $OUT
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

ANCHOR = {"shapes": ["qwen3-4b:Q8_0", "qwen3-8b:Q4_K_M"], "npp": [256], "ntg": [256], "npl": [1, 2, 4, 8, 16]}
SPEED = {
    "shapes": ["qwen3-4b:Q8_0", "qwen3-4b:Q4_K_M", "qwen3-8b:Q8_0", "qwen3-8b:Q4_K_M", "qwen3-14b:Q4_K_M"],
    "npp": [128, 8192],
    "ntg": [128],
    "npl": [1, 4],
}


def model_file(shape: str, quant: str, workdir: Path) -> Path:
    from tests.ggufgen import write_sparse_gguf

    path = workdir / f"{shape}-{quant}.gguf"
    if not path.is_file():
        config = json.loads((ROOT / "models" / f"{shape}.json").read_text())["config"]
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        write_sparse_gguf(path, config, quant=quant)
        print(f"wrote {path.name} in {time.time() - t0:.1f} s", flush=True)
    return path


def sizes(path: Path, kv: str) -> dict[str, int]:
    from edgekv.model.gguf_reader import read_spec
    from edgekv.model.quant import KvType
    from edgekv.plan.memory import kv_bytes_per_token

    spec = read_spec(path)
    return {"weights_bytes": spec.weights_bytes, "kv_bytes_per_token": kv_bytes_per_token(spec, KvType.parse(kv)),
            "n_params": spec.n_params}  # fmt: skip


def batched_bench(tools: Path, model: Path, *, kv: str, npp: list[int], ntg: list[int], npl: list[int],
                  shared: bool, device: int) -> list[dict[str, Any]]:  # fmt: skip
    n_ctx = max(p * (a + b) for p in npl for a in npp for b in ntg) + 256
    cmd = [
        str(tools / "llama-batched-bench"), "-m", str(model), "-ngl", "99", "-fa", "on", "-ctk", kv, "-ctv", kv,
        "-c", str(n_ctx), "-b", "2048", "-ub", "512", "-npp", ",".join(map(str, npp)),
        "-ntg", ",".join(map(str, ntg)), "-npl", ",".join(map(str, npl)), "--output-format", "jsonl",
    ]  # fmt: skip
    if shared:
        cmd.append("-pps")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(device))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    rows = [json.loads(line) for line in (r.stdout + r.stderr).splitlines() if line.startswith('{"n_kv_max"')]
    if r.returncode != 0 or not rows:
        raise SystemExit(f"llama-batched-bench failed ({r.returncode}): {(r.stderr or r.stdout)[-2000:]}")
    return rows


def edgekv_parallel(model: Path, *, kv: str, npp: int, ntg: int, npl: list[int], device: int,
                    sampler: str) -> list[dict[str, Any]]:  # fmt: skip
    """``edgekv bench --parallel`` with the same prompt and generation lengths (real sampler).

    ``sampler``: a place (host, backend, split), optionally ``place:T:S`` with llama.cpp's CPU
    threads T (``--threads``) and host sampling threads S (``EDGEKV_SAMPLER_THREADS``).
    """
    place, *rest = sampler.split(":")
    cmd = [
        sys.executable, "-m", "edgekv", "bench", str(model), "--kv", kv, "--parallel", ",".join(map(str, npl)),
        "--n-prompt", str(npp), "--n-gen", str(ntg), "--reps", "2", "--json", "--sampler", place,
    ]  # fmt: skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(device))
    if rest and rest[0]:
        cmd += ["--threads", rest[0]]
    if len(rest) > 1 and rest[1]:
        env["EDGEKV_SAMPLER_THREADS"] = rest[1]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if r.returncode != 0:
        print(f"edgekv bench --parallel failed: {r.stderr[-2000:]}", flush=True)
        return []
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["anchor", "speed"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tools", type=Path, default=Path("/tmp/lcpp/build/bin"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgekv-shapes"))
    ap.add_argument("--kv", default="q8_0")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--edgekv", action="store_true", help="anchor: also run edgekv bench --parallel, print ratios")
    ap.add_argument("--samplers", default="host,backend", help="anchor --edgekv: edgekv's sampler places to run")
    ap.add_argument("--shapes", help="only these shapes (comma-separated, e.g. qwen3-4b:Q8_0)")
    args = ap.parse_args()
    grid = ANCHOR if args.mode == "anchor" else SPEED
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"batched_{args.mode}.jsonl"
    rows: list[dict[str, Any]] = []
    for item in args.shapes.split(",") if args.shapes else grid["shapes"]:
        shape, quant = item.split(":")
        model = model_file(shape, quant, args.workdir)
        base = {"tool": "llama-batched-bench", "mode": args.mode, "shape": shape, "quant": quant, "kv": args.kv,
                **sizes(model, args.kv)}  # fmt: skip
        if args.mode == "anchor" and args.edgekv:
            rows += alternate(args, grid, model, base, shape, quant)
            continue
        for r in batched_bench(args.tools, model, kv=args.kv, npp=grid["npp"], ntg=grid["ntg"], npl=grid["npl"],
                               shared=args.mode == "anchor", device=args.device):  # fmt: skip
            rows.append({**base, **r})
            print(f"{shape} {quant} pp {r['pp']} tg {r['tg']} G {r['pl']}: S_TG {r['speed_tg']:.1f} t/s", flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.mode == "anchor" and args.edgekv:
        print_ratios(rows)
    print(f"wrote {out}")
    return 0


def alternate(args: argparse.Namespace, grid: dict[str, Any], model: Path, base: dict[str, Any], shape: str,
              quant: str) -> list[dict[str, Any]]:  # fmt: skip
    """Per G: llama-batched-bench, edgekv with each sampler place, llama-batched-bench again; the
    anchor is the mean of the two llama.cpp runs. Both tools then run in the same state of the GPU:
    run one after the other over minutes of load, edgekv's G = 16 (run last) measured 0.5 ms a step
    slower than in a run of its own (bench/results/gpu/decode_gap_probe.txt)."""
    rows: list[dict[str, Any]] = []

    def llama_cpp(g: int, turn: str) -> None:
        for r in batched_bench(args.tools, model, kv=args.kv, npp=grid["npp"], ntg=grid["ntg"], npl=[g],
                               shared=True, device=args.device):  # fmt: skip
            rows.append({**base, **r, "turn": turn})
            print(f"{shape} {quant} G {g} ({turn}): llama-batched-bench S_TG {r['speed_tg']:.1f} t/s", flush=True)

    for g in grid["npl"]:
        llama_cpp(g, "before")
        for place in args.samplers.split(","):
            for r in edgekv_parallel(model, kv=args.kv, npp=grid["npp"][0], ntg=grid["ntg"][0], npl=[g],
                                     device=args.device, sampler=place):  # fmt: skip
                rows.append({**base, "tool": "edgekv", "config": place, **r})
                dec = r.get("decode_tps") or {}
                print(f"{shape} {quant} G {g}: edgekv {place} {dec.get('median', 0):.1f} t/s", flush=True)
        llama_cpp(g, "after")
    return rows


def print_ratios(rows: list[dict[str, Any]]) -> None:
    runs: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        if r["tool"] == "llama-batched-bench":
            runs.setdefault((r["shape"], r["pl"]), []).append(r["speed_tg"])
    anchor = {key: sum(v) / len(v) for key, v in runs.items()}  # the mean of the runs around edgekv's
    print(
        "| shape | G | llama-batched-bench S_TG | edgekv sampler | edgekv t/s | ratio | NVML - predicted MiB |"
        " edgekv ms/step: decode, sample, edgekv |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["tool"] != "edgekv" or r.get("status", "ok") != "ok":
            continue
        g = r.get("n_seq") or r.get("parallel") or 1
        ref = anchor.get((r["shape"], g))
        dec = r.get("decode_tps")
        tps = dec.get("median") if isinstance(dec, dict) else dec
        meas, pred = r.get("measured_bytes"), r.get("predicted_bytes")
        gap = f"{(meas - pred) / 2**20:+.0f}" if meas is not None and pred is not None else ""
        ms = r.get("step_ms") or {}
        parts = (f"{ms['submit'] + ms['wait']:.2f}, {ms['sample']:.2f}, {ms['build'] + ms['accept']:.2f}"
                 if ms else "")  # fmt: skip
        if ref and tps:
            how = r.get("config") or r.get("sampler", "")
            print(f"| {r['shape']} {r['quant']} | {g} | {ref:.1f} | {how} | {tps:.1f} | "
                  f"{tps / ref:.3f} | {gap} | {parts} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
