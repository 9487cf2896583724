"""Fuzz edgekv's GGUF reader through the path ``edgekv inspect`` takes, and print what happened.

    PYTHONPATH=$PWD python bench/gguf_fuzz.py [-n 20000] [--seed 0]

Prints outcomes by mutation class (ok / each edgekv error class / tracebacks), then the
tracebacks (must be 0), the slowest case and the largest traced memory peak.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from tests.gguffuzz import CLASSES, run_cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20_000, help="cases (default 20000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cases = run_cases(args.n, Path(tmp), seed=args.seed)
    wall = time.perf_counter() - t0
    outcomes = sorted({c.outcome for c in cases})
    by = collections.Counter((c.cls, c.outcome) for c in cases)
    short = {o: o.removeprefix("error:") for o in outcomes}
    print(f"| class | cases | {' | '.join(short[o] for o in outcomes)} |")
    print("|---" * (len(outcomes) + 2) + "|")
    for cls in CLASSES:
        n = sum(v for (c, _), v in by.items() if c == cls)
        print(f"| {cls} | {n} | {' | '.join(str(by[(cls, o)]) for o in outcomes)} |")
    total = collections.Counter(c.outcome for c in cases)
    print(f"| all | {len(cases)} | {' | '.join(str(total[o]) for o in outcomes)} |")
    tracebacks = [c for c in cases if c.outcome.startswith("traceback")]
    slow = max(cases, key=lambda c: c.seconds)
    big = max(cases, key=lambda c: c.peak_bytes)
    print(f"\ntracebacks: {len(tracebacks)}")
    for c in tracebacks[:20]:
        print(f"  case {c.index} ({c.cls}, {c.base}): {c.detail}")
    print(f"max time: {slow.seconds * 1000:.1f} ms (case {slow.index}, {slow.cls})")
    print(f"max traced memory: {big.peak_bytes / 2**20:.2f} MiB (case {big.index}, {big.cls})")
    print(f"wall: {wall:.0f} s for {len(cases)} cases, seed {args.seed}")
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
