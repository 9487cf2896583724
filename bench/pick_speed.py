"""Wall time of ``edgekv pick --vram 8G`` as a whole process (interpreter start included).

Two ways to start, both measured by default (``--mode``):

- ``installed``: Python's bytecode cache on (its own folder, warmed by one run first), as after
  ``pip install``, which compiles every module once;
- ``cold``: no bytecode cache for edgekv (``PYTHONDONTWRITEBYTECODE=1``, no ``__pycache__`` in the
  tree), so every run compiles edgekv's source: the case of a checkout run in place on a machine
  that never writes bytecode (this one, and CI's).

Runs it 31 times per mode and exits 1 if a median reaches the 0.3 s target (pick stays
import-light). With ``--against REV`` the same command of another commit (checked out into a
temporary git worktree) runs interleaved with this tree's, in one run, and the ratios of the
medians are printed (wall time, and the children's CPU time, which a busy machine disturbs less).

Usage: python bench/pick_speed.py [--against REV] [--runs 31] [--mode installed|cold|both]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
ARGS = ["-m", "edgekv", "pick", "--vram", "8G"]


def environment(root: Path, mode: str, cache: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    if mode == "installed":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def timed(root: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``edgekv pick`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *ARGS], cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def report(label: str, runs: list[tuple[float, float]]) -> tuple[float, float]:
    walls = [w for w, _ in runs]
    wall, cpu = statistics.median(walls), statistics.median(c for _, c in runs)
    print(f"  {label}: {len(runs)} runs: wall min {min(walls):.3f} s, median {wall:.3f} s, max {max(walls):.3f} s;"
          f" CPU median {cpu:.3f} s")  # fmt: skip
    return wall, cpu


def measure(roots: dict[str, Path], mode: str, n: int, tmp: Path) -> dict[str, tuple[float, float]]:
    """Each tree's (median wall, median CPU), runs interleaved so both see the same machine load."""
    if mode == "cold":
        for label, root in roots.items():
            if any((root / "edgekv").rglob("__pycache__")):
                print(f"  note: {label} has __pycache__ folders: 'cold' is not cold there")
    envs = {label: environment(root, mode, tmp / f"pyc-{i}") for i, (label, root) in enumerate(roots.items())}
    for label, root in roots.items():  # warm the bytecode cache (and the disk cache)
        timed(root, envs[label])
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in roots}
    for _ in range(n):
        for label, root in roots.items():
            runs[label].append(timed(root, envs[label]))
    return {label: report(label, r) for label, r in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", help="another commit to time side by side (e.g. the one before a change)")
    ap.add_argument("--runs", type=int, default=31)
    ap.add_argument("--mode", choices=["installed", "cold", "both"], default="both")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    modes = ["installed", "cold"] if args.mode == "both" else [args.mode]
    ok = True
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        roots = {"this tree": root}
        if args.against:
            other = tmp / "other"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against], cwd=root, check=True)
            roots[args.against] = other
        try:
            for mode in modes:
                print(f"{mode}: edgekv pick --vram 8G")
                medians = measure(roots, mode, args.runs, tmp)
                ok = ok and all(wall < TARGET_S for wall, _ in medians.values())
                if args.against:
                    (w1, c1), (w0, c0) = medians["this tree"], medians[args.against]
                    ratios = f"wall {w1 / w0:.3f}, CPU {c1 / c0:.3f}"
                    print(f"  ratio this tree / {args.against}: {ratios} (below 1 = faster)")
        finally:
            if args.against:
                remove = ["git", "worktree", "remove", "--force", str(roots[args.against])]
                subprocess.run(remove, cwd=root, check=False)
    print(f"target: median < {TARGET_S} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
