"""Predicted vs measured decode tokens/s on the H200: edgekv.plan.speed against llama-batched-bench.

Measured: bench/results/gpu/batched_speed.jsonl (bench/gpu_batched.py speed: Qwen3-4B/8B/14B shapes
x Q8_0/Q4_K_M x depth 128/8192 tokens per sequence x G 1/4, q8_0 KV, flash attention). Predicted
three ways: the published-numbers constants (what a user gets with --gpu and no bench of their
own), constants refit on the older Qwen3-1.7B H200 grid (bench/results/gpu_grid.jsonl, what
``edgekv bench`` stores for --gpu auto), and a refit on half of these rows checked on the other
half. The depth is the average over the timed steps: npp + tg/2.

Usage: python bench/speed_check.py  (writes bench/results/speed_check.md)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.plan.speed import DEFAULT_SPEED, DecodeSample, SpeedModel, fit  # noqa: E402

H200_BANDWIDTH = 4.8e12  # bytes/s, NVIDIA's H200 SXM datasheet


def samples(path: Path) -> list[tuple[dict[str, object], DecodeSample]]:
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        depth = r["pp"] + r["tg"] / 2
        s = DecodeSample(int(r["weights_bytes"]), int(r["kv_bytes_per_token"]), depth, int(r["pl"]),
                         H200_BANDWIDTH, float(r["speed_tg"]))  # fmt: skip
        out.append((r, s))
    return out


def grid_samples() -> list[DecodeSample]:
    out = []
    for line in (ROOT / "bench" / "results" / "gpu_grid.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("status") != "ok" or not r.get("decode_tps"):
            continue
        kv_per_token = r["predicted"]["kv"] // max(r["n_ctx"], 1)
        out.append(DecodeSample(int(r["predicted"]["weights"]), int(kv_per_token), float(r["depth"]) + r["n_gen"] / 2,
                                int(r["n_seq"]), H200_BANDWIDTH, float(r["decode_tps"]["median"])))  # fmt: skip
    return out


def predict(m: SpeedModel, s: DecodeSample) -> float:
    agg, _ = m.decode_tps(s.weights_gpu_bytes, kv_bytes_per_token=s.kv_bytes_per_token, depth_tokens=s.depth_tokens,
                          n_seq=s.n_seq, bandwidth_bytes_per_s=s.bandwidth_bytes_per_s)  # fmt: skip
    return agg


def main() -> int:
    rows = samples(ROOT / "bench" / "results" / "gpu" / "batched_speed.jsonl")
    grid = fit(grid_samples())
    train = [s for i, (_, s) in enumerate(rows) if i % 2 == 0]
    half = fit(train)
    models = {"published": DEFAULT_SPEED, "refit 1.7B grid": grid, "refit half": half}
    lines = [
        "| shape | quant | depth | G | measured t/s | " + " | ".join(f"{k} (ratio)" for k in models) + " |",
        "|---" * (5 + len(models)) + "|",
    ]
    within = dict.fromkeys(models, 0)
    for i, (r, s) in enumerate(rows):
        cells = []
        for k, m in models.items():
            p = predict(m, s)
            ratio = p / s.measured_tps
            held_out = k != "refit half" or i % 2 == 1
            within[k] += abs(ratio - 1) <= 0.15 and held_out
            cells.append(f"{p:.0f} ({ratio:.2f})" + ("" if held_out else "*"))
        head = f"| {r['shape']} | {r['quant']} | {r['pp']} | {r['pl']} | {s.measured_tps:.0f} | "
        lines.append(head + " | ".join(cells) + " |")
    n = len(rows)
    lines.append("")
    lines.append(
        f"Within 15%: published {within['published']}/{n}, refit on the 1.7B grid {within['refit 1.7B grid']}/{n}, "
        f"refit on half {within['refit half']}/{n // 2} held-out rows (* = a row the refit was fitted on)."
    )
    for k, m in models.items():
        lines.append(f"- {k}: efficiency {m.efficiency:.3f}, fixed step {1000 * m.fixed_step_s:.2f} ms")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "speed_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
