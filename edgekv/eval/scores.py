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

from edgekv.errors import SpecError
from edgekv.eval.results import RESULT_TYPES, read_lines
from edgekv.logconfig import get_logger

logger = get_logger(__name__)


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
            out.extend(sorted(p.rglob("*.jsonl")))
        elif p.is_file():
            out.append(p)
        else:
            raise SpecError(f"no results at {p}", hint="pass a results JSONL file or a sweep's --out folder")
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
        SpecError: a path that does not exist, a damaged line or a line of another schema
            (``results.read_lines``), or a result line that lacks what a score needs.
    """
    by_id: dict[str, ConfigResult] = {}
    for path in _paths(paths):
        for n, row in read_lines(path):
            if row.get("type") in RESULT_TYPES:
                _add(by_id, row, path, n)
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
        raise SpecError(f"{path}:{n} is not an eval result line: {e!r}") from None
