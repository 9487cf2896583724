"""Reading eval's results (JSONL, schema 1) into per-configuration score tables.

One ``{"type": "problem"}`` line per problem and configuration, one ``{"type": "summary"}`` line per
finished configuration (``edgekv.eval.run.evaluate`` writes them; ``edgekv.eval.results`` owns the
format and reads the lines, by its torn-line rule). Frontier and calibration work on these tables
only, so they can be tested on constructed result sets. Stdlib only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.errors import ResultsFileError
from edgekv.eval.results import RESULT_TYPES, read_lines
from edgekv.logconfig import get_logger

logger = get_logger(__name__)
_WHAT = "pass eval's --out JSONL files or a sweep's --out folder"


@dataclass(frozen=True, slots=True)
class ConfigInfo:
    """What a configuration is and what it holds in memory (eval's ``config`` object)."""

    config_id: str
    model: str
    quant: str
    effective_bytes: int
    n_params: int
    type_k: str
    type_v: str
    budget_tokens: int
    samples: int
    dataset: str
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int
    total_bytes: int  # the whole process (edgekv's accounting)
    paper_total_bytes: int  # weights + KV (the paper's accounting)

    @classmethod
    def from_dict(cls, config_id: str, c: Mapping[str, Any]) -> ConfigInfo:
        m = c["memory"]
        return cls(
            config_id=config_id, model=str(c["model"]), quant=str(c.get("quant", "?")),
            effective_bytes=int(c["effective_bytes"]), n_params=int(c.get("n_params", 0)),
            type_k=str(c["type_k"]), type_v=str(c["type_v"]), budget_tokens=int(c["budget_tokens"]),
            samples=int(c["samples"]), dataset=str(c.get("dataset", "")),
            weights_bytes=int(m["weights"]), kv_bytes=int(m["kv"]), compute_bytes=int(m.get("compute", 0)),
            overhead_bytes=int(m.get("overhead", 0)), total_bytes=int(m["total"]),
            paper_total_bytes=int(m.get("paper_total", int(m["weights"]) + int(m["kv"]))),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProblemScores:
    """One problem under one configuration: each sample's correctness and maj@k for k = 1..G."""

    correct: tuple[bool, ...]
    maj_correct: tuple[bool, ...]


@dataclass
class ConfigResult:
    """All problem lines of one configuration, and whether its summary line was written."""

    info: ConfigInfo
    problems: dict[str, ProblemScores] = field(default_factory=dict)
    complete: bool = False


def _paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.jsonl") if f.is_file())
            if not found:
                raise ResultsFileError(f"{p} holds no results files (*.jsonl)", hint=_WHAT)
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ResultsFileError(f"no results at {p}", hint=_WHAT)
    return out


def _scores(row: Mapping[str, Any]) -> ProblemScores:
    correct = tuple(bool(x) for x in row["correct"])
    maj = tuple(bool(x) for x in row.get("maj_correct", correct[:1]))
    return ProblemScores(correct, maj)


def read_results(paths: Iterable[str | os.PathLike[str]], *, include_partial: bool = False) -> list[ConfigResult]:
    """Every configuration in ``paths`` (files, or folders searched for ``*.jsonl``), by config_id.

    Lines of other types or without a config (a sweep manifest, say) are ignored. Configurations
    without a summary line (an unfinished run) are left out unless ``include_partial``.

    Raises:
        ResultsFileError: a path that does not exist, a folder without ``*.jsonl`` files, a damaged line
            or a line of another schema (``results.read_lines``), a result line that lacks what a score
            needs, or no result line at all.
    """
    by_id: dict[str, ConfigResult] = {}
    files = _paths(paths)
    for path in files:
        for n, row in read_lines(path):
            if row.get("type") in RESULT_TYPES:
                _add(by_id, row, path, n)
    if not by_id:
        shown = ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        raise ResultsFileError(f"no eval result lines in {shown}", hint=_WHAT)
    out = [r for r in by_id.values() if r.complete or include_partial]
    dropped = len(by_id) - len(out)
    if dropped:
        logger.info("%d unfinished configuration(s) left out (no summary line)", dropped)
    return sorted(out, key=lambda r: r.info.config_id)


def _add(by_id: dict[str, ConfigResult], row: Mapping[str, Any], path: Path, n: int) -> None:
    try:
        cid = str(row["config_id"])
        res = by_id.get(cid)
        if res is None:
            res = by_id[cid] = ConfigResult(ConfigInfo.from_dict(cid, row["config"]))
        if row["type"] == "summary":
            res.complete = True
        else:
            res.problems[str(row["problem_id"])] = _scores(row)
    except (KeyError, TypeError, ValueError) as e:
        raise ResultsFileError(f"{path}:{n} is not an eval result line: {e!r}") from None
