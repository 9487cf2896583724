"""Atomic output files: every file edgekv writes is written as ``NAME.incomplete`` and then renamed."""

from __future__ import annotations

from pathlib import Path

INCOMPLETE = ".incomplete"


def incomplete_path(path: Path) -> Path:
    """The temporary name ``path`` is written under; a leftover from an earlier run is removed."""
    tmp = path.with_name(path.name + INCOMPLETE)
    tmp.unlink(missing_ok=True)
    return tmp
