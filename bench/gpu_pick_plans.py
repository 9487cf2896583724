"""pick's top plans for big cards, each run under its cap: NVML against the prediction (issue #29).

For each card (--caps, default 24, 32, 40 and 48 GiB) ``edgekv.plan.pick.pick`` ranks the catalog
(runtime accounting, default task and margin); each of its top plans (--top, default 2) is run
in a fresh process on a sparse GGUF of the model's real shapes with the quant's per-tensor types
(tests/ggufgen.write_sparse_gguf) through
``edgekv run FILE --vram CAP --kv KV --ctx N_CTX --parallel G --prompt ... --max-tokens 8 --json``
(run reserves the rest of the card, so llama.cpp sees only the cap). Checked per plan:
  - run's pre-flight accepts it (its compute buffer from llama.cpp's dry run, margin 0);
  - no out-of-memory error, and NVML's figure for the process (less the reservation) under the cap;
  - NVML within max(0.5%, 32 MiB) of the prediction: pick's plan total less its margin, and run's.
Records go to OUT/pick_plans.jsonl, a table to stdout; exit status 1 when a check fails.

On the GPU machine, from the project root (llama-cpp-python CUDA build in /tmp/site):
    PYTHONPATH=/tmp/site:. python3 bench/gpu_pick_plans.py bench/results/gpu
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

from edgekv.units import GIB, MIB  # noqa: E402

PROMPT = " ".join(["Prove that the sum of two even numbers is even."] * 8)
SHAPES = Path(os.environ.get("EDGEKV_SHAPES", "/tmp/edgekv-shapes"))


def model_file(name: str, quant: str) -> Path:
    from edgekv.store.catalog import find
    from tests.ggufgen import write_sparse_gguf

    SHAPES.mkdir(parents=True, exist_ok=True)
    path = SHAPES / f"{name}-{quant}.gguf"
    if not path.is_file():
        write_sparse_gguf(path, find(name).config, quant=quant)
    return path


def run_plan(path: Path, cap_gib: float, plan: Any) -> tuple[int, dict[str, Any] | None, str, float]:
    cmd = [sys.executable, "-m", "edgekv", "run", str(path), "--vram", f"{cap_gib:g}G", "--kv", plan.kv_label,
           "--ctx", str(plan.n_ctx), "--parallel", str(plan.parallel), "--prompt", PROMPT, "--raw",
           "--max-tokens", "8", "--greedy", "--json"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    data = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip().startswith("{") else None
    return r.returncode, data, r.stderr, time.time() - t0


def tolerance(n_bytes: int) -> float:
    return max(0.005 * n_bytes, 32 * MIB)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output directory (pick_plans.jsonl)")
    ap.add_argument("--caps", default="24,32,40,48", help="cards in GiB")
    ap.add_argument("--top", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "pick_plans.jsonl"

    import llama_cpp

    from edgekv.llama.vram import gpu_infos
    from edgekv.plan.pick import pick

    info = {
        "record": "machine", "llama_cpp": llama_cpp.__version__, "system": llama_cpp.llama_print_system_info().decode(),
        "gpus": [g.name for g in gpu_infos()], "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": "PYTHONPATH=/tmp/site:. python3 bench/gpu_pick_plans.py " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    with results.open("a") as f:
        f.write(json.dumps(info) + "\n")
    failures: list[str] = []
    rows: list[dict[str, Any]] = []
    for cap_gib in (float(c) for c in args.caps.split(",")):
        cap = round(cap_gib * GIB)
        result = pick(vram_bytes=cap, top=args.top)
        for rank, plan in enumerate(result.plans, 1):
            fp = plan.footprint
            path = model_file(plan.option.name, plan.option.quant)
            rc, data, err, secs = run_plan(path, cap_gib, plan)
            pick_total = fp.gpu_total - fp.margin
            row: dict[str, Any] = {
                "record": "plan", "cap_gib": cap_gib, "rank": rank, "model": plan.option.name,
                "quant": plan.option.quant, "kv": plan.kv_label, "tokens": plan.n_ctx_seq, "parallel": plan.parallel,
                "n_ctx": plan.n_ctx, "pick": fp.as_dict(), "pick_total_less_margin": pick_total, "rc": rc,
                "seconds": round(secs, 1),
            }  # fmt: skip
            oom = "out of memory" in err.lower() or "cudamalloc failed" in err.lower()
            ok = rc == 0 and data is not None and not oom
            if data is not None:
                pred, meas = data["predicted"], data["measured"]
                process = meas.get("process")
                row.update(run_predicted=pred, measured=meas)
                if process is None:
                    ok = False
                else:
                    row["nvml_minus_pick"] = process - pick_total
                    row["nvml_minus_run"] = process - pred["total"]
                    row["under_cap"] = process <= cap
                    row["within_pick"] = abs(process - pick_total) <= tolerance(pick_total)
                    row["within_run"] = abs(process - pred["total"]) <= tolerance(pred["total"])
                    ok = ok and row["under_cap"] and row["within_pick"] and row["within_run"]
                row["compute_pick_minus_llama"] = fp.compute - meas["compute"]
            else:
                row["stderr"] = err[-3000:]
            row["oom"], row["ok"] = oom, ok
            if not ok:
                failures.append(f"{cap_gib:g}G #{rank} {plan.option.name} {plan.option.quant}: rc {rc}, oom {oom}")
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("cap_gib", "rank", "model", "quant", "kv", "n_ctx", "parallel",
                                                        "nvml_minus_pick", "nvml_minus_run", "ok", "seconds")}),
                  flush=True)  # fmt: skip
    print_table(rows)
    summary = {"record": "summary", "ok": not failures, "failures": failures}
    with results.open("a") as f:
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary), flush=True)
    return 0 if not failures else 1


def print_table(rows: list[dict[str, Any]]) -> None:
    def mib(n: Any) -> str:
        return f"{n / MIB:,.1f}" if isinstance(n, (int, float)) else "-"

    print(
        "| card | # | model | KV | tokens x G | pick MiB | run MiB | NVML MiB | NVML - pick | NVML - run "
        "| compute pick / llama.cpp MiB | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        meas, pred = r.get("measured") or {}, r.get("run_predicted") or {}
        print(f"| {r['cap_gib']:g} GiB | {r['rank']} | {r['model']} {r['quant']} | {r['kv']} | "
              f"{r['tokens']:,} x {r['parallel']} | {mib(r['pick_total_less_margin'])} | {mib(pred.get('total'))} | "
              f"{mib(meas.get('process'))} | {mib(r.get('nvml_minus_pick'))} | {mib(r.get('nvml_minus_run'))} | "
              f"{mib(r['pick']['compute'])} / {mib(meas.get('compute'))} | {'yes' if r['ok'] else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
