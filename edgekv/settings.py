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


def data_dir() -> Path:
    """Where edgekv keeps what a user made and wants to keep (eval results): ``EDGEKV_HOME`` if set
    (everything of edgekv under one folder), else ``$XDG_DATA_HOME/edgekv`` (default
    ``~/.local/share/edgekv``, as platformdirs' user_data_dir on Linux). Not the cache folder
    (:func:`user_dir`): a cache may be wiped, results must not be."""
    env = os.environ.get("EDGEKV_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgekv"
