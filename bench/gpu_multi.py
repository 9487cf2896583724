"""Two GPUs as a 12 GiB + 8 GiB pair: pick's plans for the pair, run through edgekv, NVML per device.

Emulated caps (edgekv run reserves the rest of each card, see edgekv.llama.vram.reserve_cap) of
12 GiB on GPU 0 and 8 GiB on GPU 1. For a few real Qwen3 shapes with zero weights (a sparse F16
GGUF from tests/ggufgen.write_sparse_gguf, quantized with edgekv.llama.quantize.quantize_gguf, as
bench/gpu_grid.py does), ``edgekv.plan.pick`` ranks the plans for the pair; each model's best
plan is written as a plan file and run in a fresh process with
``edgekv run --plan PLAN --prompt ... --max-tokens 8 --json`` (llama.cpp's layer split with the
plan's tensor_split). Checked for every plan, per device:
  - NVML's figure for the process (less the reservation) within max(2%, 64 MiB) of the prediction
    (the prediction ``run`` makes with each device's compute buffer from a split dry run);
  - no out-of-memory error, and each device under its cap;
and once: a plan that fits neither card alone (pick refuses the model for 12 GiB and for 8 GiB)
but fits the pair. pick's own per-device compute estimate is recorded next to the dry run's.
A plan ``run`` refuses (its measured compute buffers larger than pick's estimate) is recorded and
run again with ``--ctx auto``.

Records go to OUT/gpu_multi.jsonl, plus a table on stdout; exit status 1 when a check fails.

On a 2-GPU machine, from the project root (llama-cpp-python CUDA build in /tmp/site):
    PYTHONPATH=/tmp/site:. python3 bench/gpu_multi.py bench/results/multi
    PYTHONPATH=/tmp/site:. python3 bench/gpu_multi.py OUT --shapes qwen3-4b,qwen3-14b --direct
(--direct writes the quantized types straight into the sparse file, skipping llama_model_quantize.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers GPUs as NVML does
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0,1")  # llama.cpp splits over every visible GPU

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.units import GIB, MIB, parse_size  # noqa: E402

PROMPT = " ".join(["Prove that the sum of two even numbers is even."] * 8)


def make_models(shapes: list[str], quant: str, workdir: Path, *, direct: bool) -> list[Path]:
    """Each shape's GGUF at ``quant`` (reused when already there)."""
    from tests.ggufgen import write_sparse_gguf

    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for shape in shapes:
        config = json.loads((ROOT / "models" / f"{shape}.json").read_text())["config"]
        path = workdir / f"{shape}-{quant}.gguf"
        t0 = time.time()
        if not path.is_file() and direct:
            write_sparse_gguf(path, config, quant=quant)
        elif not path.is_file():
            from edgekv.llama.quantize import quantize_gguf

            f16 = workdir / f"{shape}-F16.gguf"
            if not f16.is_file():
                write_sparse_gguf(f16, config, outtype="F16")
            quantize_gguf(f16, path, quant, threads=os.cpu_count())
            f16.unlink()  # sparse, but keep the disk tidy
        print(f"{path.name}: ready in {time.time() - t0:.0f} s", flush=True)
        out.append(path)
    return out


def fits_alone(opt: Any, cap: int) -> bool:
    from edgekv.errors import NoFeasiblePlan
    from edgekv.plan.pick import pick
    from edgekv.plan.requests import PickRequest

    try:
        pick(PickRequest(vram_bytes=cap, top=1), [opt])
    except NoFeasiblePlan:
        return False
    return True


def run_plan(plan_file: Path, *, ctx_auto: bool) -> tuple[int, dict[str, Any] | None, str]:
    cmd = [sys.executable, "-m", "edgekv", "run", "--plan", str(plan_file), "--prompt", PROMPT, "--raw",
           "--max-tokens", "8", "--greedy", "--json"]  # fmt: skip
    if ctx_auto:
        cmd += ["--ctx", "auto"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    data = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip().startswith("{") else None
    return r.returncode, data, r.stderr


def check_run(data: dict[str, Any], caps: list[int]) -> tuple[bool, list[dict[str, Any]]]:
    """Per device: NVML vs predicted within max(2%, 64 MiB), and under the cap."""
    rows, ok = [], True
    for i, (pred, meas) in enumerate(zip(data["predicted_per_device"], data["measured_per_device"], strict=True)):
        process = meas.get("process")
        tol = max(0.02 * pred["total"], 64 * MIB)
        delta = None if process is None else process - pred["total"]
        good = process is not None and abs(delta or 0) <= tol and process <= caps[i]
        ok = ok and good
        rows.append({"device": i, "predicted": pred, "measured": meas, "delta_bytes": delta, "within": good})
    return ok, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output directory (gpu_multi.jsonl, plans/)")
    ap.add_argument("--caps", default="12G,8G", help="emulated cap of GPU 0, GPU 1, ...")
    ap.add_argument("--shapes", default="qwen3-4b,qwen3-8b,qwen3-14b", help="models/<shape>.json to size")
    ap.add_argument("--quant", default="Q8_0")
    ap.add_argument("--direct", action="store_true", help="write the quant's types directly (no quantize pass)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("EDGEKV_SHAPES", "/tmp/edgekv-multi")))
    args = ap.parse_args()
    t_start = time.time()
    caps = [parse_size(c) for c in args.caps.split(",")]
    out: Path = args.out
    (out / "plans").mkdir(parents=True, exist_ok=True)
    results = out / "gpu_multi.jsonl"

    import llama_cpp

    from edgekv.llama.vram import gpu_infos
    from edgekv.plan.pick import pick
    from edgekv.plan.requests import PickRequest
    from edgekv.store.catalog import gguf_option
    from edgekv.store.planfile import pick_dict

    info = {
        "record": "machine", "llama_cpp": llama_cpp.__version__, "system": llama_cpp.llama_print_system_info().decode(),
        "gpus": [dataclasses.asdict(g) for g in gpu_infos()], "caps": caps,
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    with results.open("a") as f:
        f.write(json.dumps(info) + "\n")
    print(json.dumps(info)[:400], flush=True)
    paths = make_models(args.shapes.split(","), args.quant, args.workdir, direct=args.direct)
    options = [gguf_option(p) for p in paths]
    result = pick(PickRequest(vram_bytes=tuple(caps), top=len(options)), options)
    failures: list[str] = []
    pair_only_ran = False
    table = []
    for plan in result.plans:
        name = plan.option.name
        alone = {f"fits_alone_{c // GIB}G": fits_alone(plan.option, c) for c in caps}
        data = pick_dict(result)
        mine = next(p for p in data["plans"] if p["model"] == name)
        data["plans"] = [mine]
        plan_file = out / "plans" / f"{name}.json"
        plan_file.write_text(json.dumps(data, indent=1))
        t0 = time.time()
        rc, run, err = run_plan(plan_file, ctx_auto=False)
        refused = rc != 0 and "short" in err
        if refused:  # run measured larger compute buffers than pick estimated: fit again, then run
            rc, run, err = run_plan(plan_file, ctx_auto=True)
        oom = "out of memory" in err.lower() or "cudamalloc failed" in err.lower()
        row: dict[str, Any] = {
            "record": "plan", "model": name, "quant": plan.option.quant, "kv": plan.kv_label,
            "n_ctx_plan": plan.n_ctx, "parallel": plan.parallel, "tensor_split": list(plan.tensor_split),
            "pick_per_device": mine["memory_per_device"], **alone, "plan_refused_by_run": refused, "rc": rc,
            "oom": oom, "seconds": round(time.time() - t0, 1),
        }  # fmt: skip
        ok = rc == 0 and run is not None and not oom
        if run is not None:
            within, per = check_run(run, caps)
            ok = ok and within
            row.update(n_ctx_run=run["config"]["n_ctx"], devices=per, measured=run["measured"],
                       predicted=run["predicted"], build=run["build"])  # fmt: skip
        else:
            row["stderr"] = err[-3000:]
        row["ok"] = ok
        if not ok:
            failures.append(f"{name}: rc {rc}, oom {oom}" + ("" if run is None else ", a device off its prediction"))
        if ok and not any(alone.values()):
            pair_only_ran = True
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        table.append(row)
        print(json.dumps({k: row[k] for k in ("model", "kv", "rc", "ok", "seconds")}), flush=True)
    if not pair_only_ran:
        failures.append("no plan that fits neither card alone ran on the pair")
    summary = {"record": "summary", "ok": not failures, "failures": failures, "seconds": round(time.time() - t_start)}
    with results.open("a") as f:
        f.write(json.dumps(summary) + "\n")
    print_table(table, caps)
    print(json.dumps(summary), flush=True)
    return 0 if not failures else 1


def print_table(rows: list[dict[str, Any]], caps: list[int]) -> None:
    def mib(n: Any) -> str:
        return f"{n / MIB:9.0f}" if isinstance(n, (int, float)) else f"{'-':>9}"

    head = f"{'model':<22}{'KV':<6}{'n_ctx':>7} {'alone?':<7}{'dev':>4}{'pick MiB':>10}{'run MiB':>9}{'NVML MiB':>9}"
    head += f"{'delta':>7}{'compute est/dry/log':>22}  ok"
    print(head)
    for r in rows:
        alone = "yes" if any(v for k, v in r.items() if k.startswith("fits_alone")) else "no"
        for i, d in enumerate(r.get("devices") or [{}] * len(caps)):
            pick_dev = r["pick_per_device"][i] if i < len(r["pick_per_device"]) else {}
            pred, meas = d.get("predicted", {}), d.get("measured", {})
            comp = f"{mib(pick_dev.get('compute')).strip()}/{mib(pred.get('compute')).strip()}/"
            comp += mib(meas.get("compute")).strip()
            print(f"{r['model'][:21]:<22}{r['kv']:<6}{r.get('n_ctx_run', r['n_ctx_plan']):>7} {alone:<7}{i:>4}"
                  f"{mib(pick_dev.get('total'))}{mib(pred.get('total'))}{mib(meas.get('process'))}"
                  f"{mib(d.get('delta_bytes'))[2:]:>7}{comp:>22}  {'ok' if r['ok'] else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
