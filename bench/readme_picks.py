"""Regenerate (``--write``) or check (default) the ``edgekv pick`` outputs in README.md and docs/picks.md.

Each ``## `edgekv pick ...` `` heading (levels 2-4) is followed by the command's real output at
110 columns; this script runs every such command and replaces or compares the block.

Usage: python bench/readme_picks.py [--write]   (tests/test_readme.py runs the check)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^(#{2,4} `(edgekv pick[^`]*)`\n\n```\n)(.*?)(```)", re.S | re.M)
PAGES = ("README.md", "docs/picks.md")
COLUMNS = 110


def normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def render(command: str) -> str:
    # EDGEKV_RAM: --ram's default as on a machine with 32 GiB for the host side, whatever this one has
    env = {**os.environ, "COLUMNS": str(COLUMNS), "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "EDGEKV_RAM": "32G"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekv", *shlex.split(command)[1:]], capture_output=True, text=True, env=env, check=True
    )
    return normalize(proc.stdout)


def main() -> int:
    write = "--write" in sys.argv[1:]
    stale: list[str] = []
    checked = 0
    for name in PAGES:
        page = ROOT / name
        text = page.read_text()

        def sub(m: re.Match[str], name: str = name) -> str:
            got = render(m.group(2))
            if normalize(m.group(3)) != got:
                stale.append(f"{name}: {m.group(2)}")
            return m.group(1) + got + m.group(4)

        new, n = BLOCK.subn(sub, text)
        if n == 0:
            print(f"{name}: no edgekv pick output found")
            return 1
        checked += n
        if write:
            page.write_text(new)
    if write:
        print(f"rewrote {len(stale)} of {checked} block(s): {', '.join(stale) or 'none changed'}")
        return 0
    for cmd in stale:
        print(f"stale output: {cmd} (run python bench/readme_picks.py --write)")
    print(f"checked {checked} edgekv pick output(s)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
