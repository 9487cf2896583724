"""MoE plans with experts in RAM, run under an emulated card: NVML vs the GPU side, RSS vs the host side (issue 24).

For each card (--caps, default 8, 12 and 16 GiB) with --ram (default 32 GiB) of system RAM,
``edgekv.plan.pick.pick`` ranks Qwen3-30B-A3B and gpt-oss-20b alone (--models); each of its top plans
(--top, default 2) runs in a fresh process (``--one``) on a sparse GGUF of the model's real shapes:
bench/sparse_gguf.py's (holes, random token embeddings and random router weights, so the experts
read vary from token to token) when that module is in the checkout, else tests/ggufgen's (holes
only; the record says which). The child process does what ``edgekv run --vram CAP --ram RAM
--n-cpu-moe N`` does (the cap reserved on the card, the pre-flight with the dry run's compute buffer,
the experts of the first N blocks placed in RAM through tensor_buft_overrides), generates 16 tokens
of a 512-token prompt, and records:

  - device: NVML's figure for the process less the reservation, against pick's GPU side (less its
    margin) and run's (the dry run's compute buffer); the issue's bound: max(1%, 64 MiB);
  - host: the process's RSS (VmRSS; RssAnon and RssFile apart) after the run less its RSS after the
    pre-flight's dry run (so the CUDA context's own host memory is left out), against the plan's host
    side (``memory.host_total``: token_embd + experts in RAM + host buffers); the issue's bound: 5%.
    The file-backed part depends on mmap (experts left mapped are resident only once read; CPU_REPACK
    copies are anonymous), so both parts are kept;
  - llama.cpp's buffers (model per buffer type, KV, compute per device) as its log gives them.

Rows go to OUT/moe_cap.jsonl (one per plan, plus a machine record per invocation); a plan already
there (same model, quant, cap, RAM, KV, context, n_cpu_moe) is skipped, so a run that stops can be
started again. Exit status 1 when a check fails.

On the GPU machine, from the project root (llama-cpp-python CUDA build in /tmp/site):
    PYTHONPATH=/tmp/site:. python3 bench/gpu_moe_cap.py bench/results/gpu
"""

from __future__ import annotations

import argparse
import importlib.util
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

PROMPT_TOKENS = 512
GEN_TOKENS = 16
SHAPES = Path(os.environ.get("EDGEKV_SHAPES", "/tmp/edgekv-shapes"))
CATALOG_FILES = {"Qwen3-30B-A3B": "qwen3-30b-a3b", "gpt-oss-20b": "gpt-oss-20b"}
QUANTS = {"gpt-oss-20b": ["MXFP4_MOE"]}


def model_file(name: str, quant: str) -> tuple[Path, str]:
    """The sparse GGUF of ``name`` at ``quant`` (made once) and which generator made it."""
    SHAPES.mkdir(parents=True, exist_ok=True)
    gen = ROOT / "bench" / "sparse_gguf.py"
    kind = "bench/sparse_gguf.py (random embeddings and routers)" if gen.is_file() else "tests/ggufgen (holes only)"
    path = SHAPES / f"{name}-{quant}-{'routed' if gen.is_file() else 'holes'}.gguf"
    if path.is_file():
        return path, kind
    if gen.is_file():
        spec = importlib.util.spec_from_file_location("sparse_gguf", gen)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.write_sparse_model(path, mod.catalog_config(CATALOG_FILES[name]), quant=quant)
    else:
        from edgekv.store.catalog import find
        from tests.ggufgen import write_sparse_gguf

        write_sparse_gguf(path, find(name).config, quant=quant)
    return path, kind


def rss() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of this process (bytes)."""
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def one(args: argparse.Namespace) -> int:
    """Child: run one plan under the cap and print one JSON object."""
    from edgekv.llama import session
    from edgekv.llama.sampling import Sampling
    from edgekv.model.quant import KvType
    from edgekv.plan.memory import RunConfig

    kv = KvType.parse(args.kv)
    cfg = RunConfig(n_ctx=args.n_ctx, type_k=kv, type_v=kv, n_seq=args.parallel, n_cpu_moe=args.n_cpu_moe)
    cap, ram = round(args.cap * GIB), round(args.ram * GIB)
    prepared = session.prepare(args.path, cfg, vram_bytes=cap, ram_bytes=ram)
    before = rss()  # after the dry run: the CUDA context's own host memory is not the plan's
    t0 = time.time()
    with session.open_run(prepared) as sess:
        runner = sess.runner
        tokens = (runner.tokenize("Prove that the sum of two even numbers is even. " * 64) * 4)[:PROMPT_TOKENS]
        session.generate(runner, tokens, GEN_TOKENS, n_seq=cfg.n_seq, sampling=Sampling(greedy=True))
        measured = session.measure(sess)
        after = rss()
        buffers = sess.runner.buffers.as_dict()
    fp = prepared.check.footprint
    print(json.dumps({
        "predicted": fp.as_dict(), "measured": measured.as_dict(), "rss_before": before, "rss_after": after,
        "buffers": buffers, "seconds": round(time.time() - t0, 1),
    }))  # fmt: skip
    return 0


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in ("model", "quant", "cap_gib", "ram_gib", "kv", "n_ctx", "n_cpu_moe"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, nargs="?", help="output directory (moe_cap.jsonl)")
    ap.add_argument("--caps", default="8,12,16", help="cards in GiB")
    ap.add_argument("--ram", type=float, default=32.0, help="system RAM in GiB (pick --ram)")
    ap.add_argument("--models", default="Qwen3-30B-A3B,gpt-oss-20b")
    ap.add_argument("--top", type=int, default=2)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    for name, typ in (("--path", str), ("--cap", float), ("--kv", str), ("--n-ctx", int), ("--parallel", int),
                      ("--n-cpu-moe", int)):  # fmt: skip
        ap.add_argument(name, type=typ, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args)
    if args.out is None:
        ap.error("give the output directory")
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "moe_cap.jsonl"
    done = {key(r) for r in map(json.loads, results.read_text().splitlines()) if r.get("record") == "plan"} if (
        results.is_file()) else set()  # fmt: skip

    import llama_cpp

    from edgekv.llama.vram import gpu_infos
    from edgekv.plan.pick import pick
    from edgekv.plan.requests import PickRequest
    from edgekv.store.catalog import catalog_options

    with results.open("a") as f:
        f.write(json.dumps({
            "record": "machine", "llama_cpp": llama_cpp.__version__,
            "system": llama_cpp.llama_print_system_info().decode(), "gpus": [g.name for g in gpu_infos()],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": "PYTHONPATH=/tmp/site:. python3 bench/gpu_moe_cap.py " + " ".join(sys.argv[1:]),
        }) + "\n")  # fmt: skip
    failures: list[str] = []
    for model in args.models.split(","):
        # the quants a file exists for (gpt-oss-20b: MXFP4_MOE; its BF16/F16 would be upcast experts)
        options = catalog_options(None, [model], QUANTS.get(model))
        for cap_gib in (float(c) for c in args.caps.split(",")):
            req = PickRequest(vram_bytes=round(cap_gib * GIB), ram_bytes=round(args.ram * GIB), top=args.top)
            for rank, plan in enumerate(pick(req, options).plans, 1):
                fp = plan.footprint
                row: dict[str, Any] = {
                    "record": "plan", "model": model, "quant": plan.option.quant, "cap_gib": cap_gib,
                    "ram_gib": args.ram, "rank": rank, "kv": plan.kv_label, "n_ctx": plan.n_ctx,
                    "parallel": plan.parallel, "n_cpu_moe": plan.n_cpu_moe, "pick": fp.as_dict(),
                }  # fmt: skip
                if key(row) in done:
                    print(f"skip (done): {key(row)}")
                    continue
                path, kind = model_file(model, plan.option.quant)
                row["gguf"] = kind
                cmd = [sys.executable, __file__, "--one", "--path", str(path), "--cap", f"{cap_gib:g}", "--ram",
                       f"{args.ram:g}", "--kv", plan.kv_label, "--n-ctx", str(plan.n_ctx), "--parallel",
                       str(plan.parallel), "--n-cpu-moe", str(plan.n_cpu_moe)]  # fmt: skip
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=580)
                row.update(rc=r.returncode, seconds=round(time.time() - t0, 1), stderr_tail=r.stderr[-2000:])
                if r.returncode == 0 and r.stdout.strip().startswith("{"):
                    data = json.loads(r.stdout.strip().splitlines()[-1])
                    row.update(data)
                    process = data["measured"].get("process")
                    gpu_pick = fp.gpu_total - fp.margin
                    gpu_run = data["predicted"]["total"] - data["predicted"]["margin"]
                    host_pred = data["predicted"]["host_total"]
                    host_meas = data["rss_after"]["VmRSS"] - data["rss_before"]["VmRSS"]
                    row.update(
                        nvml_minus_pick=None if process is None else process - gpu_pick,
                        nvml_minus_run=None if process is None else process - gpu_run,
                        rss_delta=host_meas, rss_minus_host=host_meas - host_pred,
                        rss_anon_delta=data["rss_after"]["RssAnon"] - data["rss_before"]["RssAnon"],
                        within_device=process is not None and abs(process - gpu_run) <= max(0.01 * gpu_run, 64 * MIB),
                        within_host=abs(host_meas - host_pred) <= 0.05 * host_pred,
                        under_cap=process is not None and process <= round(cap_gib * GIB),
                    )  # fmt: skip
                    if not (row["within_device"] and row["within_host"] and row["under_cap"]):
                        failures.append(f"{model} {plan.option.quant} {cap_gib:g}G: see {results}")
                else:
                    failures.append(f"{model} {plan.option.quant} {cap_gib:g}G: exit {r.returncode}")
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{model} {plan.option.quant} {cap_gib:g}G n_cpu_moe {plan.n_cpu_moe}: rc {row['rc']}, "
                      f"NVML-run {row.get('nvml_minus_run')}, RSS-host {row.get('rss_minus_host')}")  # fmt: skip
    for line in failures:
        print("FAIL", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
