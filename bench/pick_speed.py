"""Wall time of ``edgekv pick --vram 8G`` as a whole process (interpreter start included).

Runs it 21 times and exits 1 if the median reaches the 0.3 s target (pick stays import-light).
With ``--against REV`` the same command of another commit (checked out into a temporary git
worktree) runs interleaved with this tree's, in one run, and the ratio of the medians is printed.

Usage: python bench/pick_speed.py [--against REV] [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
ARGS = ["-m", "edgekv", "pick", "--vram", "8G"]


def timed(root: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *ARGS], cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def report(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{label}: {len(times)} runs: min {min(times):.3f} s, median {median:.3f} s, max {max(times):.3f} s")
    return median


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", help="another commit to time side by side (e.g. the one before a change)")
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    if not args.against:
        median = report("edgekv pick --vram 8G", [timed(root) for _ in range(args.runs)])
        print(f"median {median:.3f} s (target < {TARGET_S} s)")
        return 0 if median < TARGET_S else 1
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against], cwd=root, check=True)
        try:
            now: list[float] = []
            then: list[float] = []
            for _ in range(args.runs):  # interleaved, so both see the same machine load
                now.append(timed(root))
                then.append(timed(other))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=root, check=False)
    m_now = report("this tree", now)
    m_then = report(args.against, then)
    print(f"median ratio this tree / {args.against}: {m_now / m_then:.3f} (below 1.0 = faster)")
    return 0 if m_now < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
