"""Where edgekv keeps its own files. Read at call time (flag > EDGEKV_* env > default), never at import."""

from __future__ import annotations

import os
from pathlib import Path


def user_dir() -> Path:
    """``EDGEKV_HOME`` if set, else ``$XDG_CACHE_HOME/edgekv`` (default ``~/.cache/edgekv``)."""
    env = os.environ.get("EDGEKV_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgekv"
