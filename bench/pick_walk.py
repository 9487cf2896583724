"""A card walk: ``edgekv.plan.pick.pick`` for every card from 2 to 48 GiB in 0.25 GiB steps x task
(math, code, knowledge) x family (qwen3, all) x accounting (paper, runtime), with 32 GiB of system RAM
(``--ram``: plans may keep a MoE's experts there; ``n_cpu_moe`` and ``ram_gib`` say how much).

Writes the top plans (``--top``, 3 by default) of each pick to ``bench/results/pick_walk.csv``.
Work is shared: the catalog is read once, and each card x accounting is enumerated once (family
all); the tasks and the qwen3 subset only re-rank those plans (``pick(plans=...)``).
tests/plan/test_pick_walk.py checks the rule's properties over the same walk.

Usage: python bench/pick_walk.py [--out bench/results/pick_walk.csv] [--top 3] [--step 0.25]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from edgekv.errors import NoFeasiblePlan
from edgekv.model.spec import Task
from edgekv.plan.pick import pick
from edgekv.plan.plans import sizes
from edgekv.plan.requests import PickRequest
from edgekv.store.catalog import catalog_options
from edgekv.units import GIB

TASKS = (Task.MATH, Task.CODE, Task.KNOWLEDGE)
FAMILIES = ("qwen3", "all")
ACCOUNTINGS = ("paper", "runtime")
FIELDS = (
    "accounting", "vram_gib", "task", "family", "rank", "model", "quant", "e_gib", "capacity_gib", "regime",
    "kv", "tokens", "parallel", "total_gib", "n_cpu_moe", "ram_gib",
)  # fmt: skip
RAM_BYTES = 32 * GIB  # tests/plan/test_pick_walk.py walks with the same


def cards(lo_gib: float = 2.0, hi_gib: float = 48.0, step_gib: float = 0.25) -> list[int]:
    """Card sizes in bytes, lo..hi inclusive."""
    n = round((hi_gib - lo_gib) / step_gib)
    return [round((lo_gib + i * step_gib) * GIB) for i in range(n + 1)]


def walk(card_bytes: list[int], *, top: int) -> list[dict[str, object]]:
    """One row per top plan of every card x accounting x task x family (no row where nothing fits)."""
    options = {fam: catalog_options(fam) for fam in FAMILIES}
    rows: list[dict[str, object]] = []
    for accounting in ACCOUNTINGS:
        for vram in card_bytes:
            try:
                first = pick(
                    PickRequest(vram_bytes=vram, accounting=accounting, top=top, ram_bytes=RAM_BYTES), options["all"]
                )
            except NoFeasiblePlan:
                continue
            for task in TASKS:
                for fam in FAMILIES:
                    request = PickRequest(
                        vram_bytes=vram, task=task, accounting=accounting, top=top, ram_bytes=RAM_BYTES
                    )
                    result = pick(request, options[fam], plans=first.enumerated)
                    for rank, p in enumerate(result.plans, 1):
                        rows.append({
                            "accounting": accounting, "vram_gib": vram / GIB, "task": task.value, "family": fam,
                            "rank": rank, "model": p.option.name, "quant": p.option.quant,
                            "e_gib": round(p.option.effective_bytes / GIB, 3),
                            "capacity_gib": round(sizes(p.option, result.policy)[1] / GIB, 3),
                            "regime": p.regime, "kv": p.kv_label, "tokens": p.n_ctx_seq, "parallel": p.parallel,
                            "total_gib": round(p.footprint.gpu_total / GIB, 3), "n_cpu_moe": p.n_cpu_moe,
                            "ram_gib": round(p.footprint.host_total / GIB, 3),
                        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "pick_walk.csv")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--step", type=float, default=0.25, help="card step in GiB")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    card_bytes = cards(step_gib=args.step)
    rows = walk(card_bytes, top=args.top)
    elapsed = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".incomplete")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(args.out)
    n_picks = len(card_bytes) * len(ACCOUNTINGS) * len(TASKS) * len(FAMILIES)
    print(f"{n_picks} picks ({len(card_bytes)} cards), {len(rows)} rows in {elapsed:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
