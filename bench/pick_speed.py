"""Wall time of ``edgekv pick --vram 8G`` as a whole process (interpreter start included).

Runs it 21 times and exits 1 if the median reaches the 0.3 s target (issue #3: pick stays
import-light). Usage: python bench/pick_speed.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 21
TARGET_S = 0.3
CMD = [sys.executable, "-m", "edgekv", "pick", "--vram", "8G"]


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    times: list[float] = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(CMD, cwd=root, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"edgekv pick --vram 8G, {RUNS} runs: min {min(times):.3f} s, median {median:.3f} s, max {max(times):.3f} s")
    print(f"median {median:.3f} s (target < {TARGET_S} s)")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
