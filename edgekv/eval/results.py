"""The results file of ``edgekv eval``: JSONL, one line per problem, a summary line per finished run.

Schema 1 (``sweep``, ``frontier`` and ``calibrate`` read it; keep the names)::

    {"schema": 1, "type": "problem", "config_id", "config", "problem_id", "gold", "answers", "correct",
     "majority", "maj_correct", "n_tokens", "cut", "seconds"}
    {"schema": 1, "type": "summary", "config_id", "config", "metrics", "measured_memory", "decode_tps", ...}

Lines are appended one at a time, flushed and fsynced, so a killed run leaves whole lines and at
most one partial last line; :func:`read_results` ignores that line and :func:`open_for_append`
cuts it off before appending. ``config_id`` is a stable hash of the config's settings (everything
but the predicted ``memory`` and ``n_ctx``, which follow from them and the prompts, and ``model_path``:
the file's name, quant and bytes identify it wherever it lies), so a rerun with the same settings resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgekv.errors import DatasetError
from edgekv.logconfig import get_logger

SCHEMA = 1
# derived or local: a prediction, the context the prompts needed, where the file is on this machine
NOT_HASHED = ("memory", "n_ctx", "model_path")

log = get_logger(__name__)


def config_id(config: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the config's settings as sorted JSON."""
    settings = {k: v for k, v in config.items() if k not in NOT_HASHED}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ResultsFile:
    """What a results file holds for one config: its problem lines (by id) and whether it has a summary."""

    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    n_lines: int = 0
    partial_tail: bool = False


def read_results(path: Path, *, config_id: str | None = None) -> ResultsFile:
    """Whole lines of ``path`` (of ``config_id`` only, if given); a partial last line is ignored."""
    out = ResultsFile()
    if not path.is_file():
        return out
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] != b"":
        out.partial_tail = True
        log.warning("%s: ignoring a partial last line (%d bytes) from an interrupted run", path, len(lines[-1]))
    for no, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: line {no} is not JSON ({e.msg})", hint="use another --out file") from e
        out.n_lines += 1
        if not isinstance(row, dict) or (config_id is not None and row.get("config_id") != config_id):
            continue
        if row.get("type") == "problem":
            out.problems[str(row["problem_id"])] = row
        elif row.get("type") == "summary":
            out.summaries.append(row)
    return out


def open_for_append(path: Path) -> IO[str]:
    """Open ``path`` for appending, first cutting a partial last line off (whole lines stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with path.open("r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
    return path.open("a", encoding="utf-8")


def append_line(fh: IO[str], row: Mapping[str, Any]) -> None:
    """One JSON line, written whole, flushed and fsynced."""
    fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
