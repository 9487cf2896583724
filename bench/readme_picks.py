"""Regenerate (``--write``) or check (default) the README's "Picks for common cards" outputs.

Each ``#### `edgekv pick ...` `` heading is followed by the command's real output at 110
columns; this script runs every such command and replaces or compares the block.

Usage: python bench/readme_picks.py [--write]
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(#### `(edgekv pick[^`]*)`\n\n```\n)(.*?)(```)", re.S)
COLUMNS = 110


def normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def render(command: str) -> str:
    env = {**os.environ, "COLUMNS": str(COLUMNS), "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekv", *shlex.split(command)[1:]], capture_output=True, text=True, env=env, check=True
    )
    return normalize(proc.stdout)


def main() -> int:
    write = "--write" in sys.argv[1:]
    readme = ROOT / "README.md"
    text = readme.read_text()
    stale: list[str] = []

    def sub(m: re.Match[str]) -> str:
        got = render(m.group(2))
        if normalize(m.group(3)) != got:
            stale.append(m.group(2))
        return m.group(1) + got + m.group(4)

    new = BLOCK.sub(sub, text)
    if write:
        readme.write_text(new)
        print(f"rewrote {len(stale)} block(s): {', '.join(stale) or 'none changed'}")
        return 0
    for cmd in stale:
        print(f"stale README output: {cmd} (run python bench/readme_picks.py --write)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
