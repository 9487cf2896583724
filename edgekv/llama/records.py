"""Benchmark records: settings, timing statistics, measured memory, and their dict/CSV forms.

Split from ``bench``, which re-exports every name here. Plain data and formatting, no llama.cpp:
``BenchRecord.as_dict`` is the ``--json`` schema and ``CSV_COLUMNS`` + :func:`flat` the CSV one (:func:`csv_text`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekv.plan.memory import Footprint, RunConfig
from edgekv.units import format_bytes


@dataclass(frozen=True, slots=True)
class BenchSettings:
    n_prompt: int = 512
    n_gen: int = 128
    reps: int = 5
    n_threads: int | None = None
    n_batch: int | None = None
    warmup: bool = True
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    median: float
    min: float
    max: float
    stdev: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        v = tuple(values)
        if not v:
            return cls(math.nan, math.nan, math.nan, math.nan, ())
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return cls(statistics.median(v), min(v), max(v), sd, v)

    def as_dict(self) -> dict[str, Any]:
        r = 3
        return {
            "median": round(self.median, r), "min": round(self.min, r), "max": round(self.max, r),
            "stdev": round(self.stdev, r), "values": [round(x, r) for x in self.values],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Measured:
    """What a run used: llama.cpp's buffers on the capped device, and the process as a whole."""

    model: int
    kv: int
    compute: int
    process: int | None  # NVML less the reservation (GPU) or peak RSS (CPU); None if unknown
    process_source: str  # "nvml", "rss" or "unavailable"
    output: int = 0
    repack: int = 0
    kv_k: int = 0
    kv_v: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "kv": self.kv, "kv_k": self.kv_k, "kv_v": self.kv_v, "compute": self.compute,
            "output": self.output, "repack": self.repack, "process": self.process,
            "process_source": self.process_source,
        }  # fmt: skip


def predicted_dict(fp: Footprint) -> dict[str, int | str]:
    """The prediction as records show it (total without the margin: what the process should hold)."""
    return {
        "weights": fp.weights_gpu, "kv": fp.kv, "compute": fp.compute, "overhead": fp.overhead,
        "margin": fp.margin, "total": fp.gpu_total - fp.margin, "compute_source": fp.compute_source,
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class BenchRecord:
    """One (configuration, depth) row of a benchmark: settings, prediction, measurement, speed."""

    model: str
    path: str
    cfg: RunConfig
    depth: int
    settings: BenchSettings
    status: str  # "ok", "refused" (over the cap or an unsupported K/V pair), "skipped", "error"
    reason: str | None = None
    predicted: Footprint | None = None
    measured: Measured | None = None
    prompt_tps: Stats | None = None
    decode_tps: Stats | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        c, s = self.cfg, self.settings
        return {
            "model": self.model, "path": self.path, "type_k": c.type_k.value, "type_v": c.type_v.value,
            "n_ctx": c.n_ctx, "n_seq": c.n_seq, "n_gpu_layers": c.n_gpu_layers, "n_cpu_moe": c.n_cpu_moe,
            "flash_attn": c.flash_attn, "n_ubatch": c.n_ubatch, "swa_full": c.swa_full, "depth": self.depth,
            "n_prompt": s.n_prompt, "n_gen": s.n_gen, "reps": s.reps, "n_threads": s.n_threads or os.cpu_count(),
            "status": self.status, "reason": self.reason,
            "predicted": predicted_dict(self.predicted) if self.predicted else None,
            "measured": self.measured.as_dict() if self.measured else None,
            "prompt_tps": self.prompt_tps.as_dict() if self.prompt_tps else None,
            "decode_tps": self.decode_tps.as_dict() if self.decode_tps else None,
            **self.extra,
        }  # fmt: skip


CSV_COLUMNS = (
    "model", "type_k", "type_v", "n_ctx", "n_seq", "n_gpu_layers", "flash_attn", "depth", "n_prompt", "n_gen", "reps",
    "status", "predicted.weights", "predicted.kv", "predicted.compute", "predicted.overhead", "predicted.total",
    "measured.model", "measured.kv", "measured.compute", "measured.process", "prompt_tps.median", "prompt_tps.min",
    "prompt_tps.max", "prompt_tps.stdev", "decode_tps.median", "decode_tps.min", "decode_tps.max",
    "decode_tps.stdev", "device", "vram_bytes", "build.llama_cpp_python", "reason",
)  # fmt: skip


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested record keys as dotted CSV columns."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """``bench --csv``: a header of CSV_COLUMNS, then one flattened row per record (other keys dropped)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow(flat(row))
    return buf.getvalue()


def summary(records: Sequence[BenchRecord]) -> str:
    ok = sum(r.status == "ok" for r in records)
    return f"{ok} of {len(records)} configurations ran" + (
        f"; peak {format_bytes(max(r.measured.process or 0 for r in records if r.measured))}"
        if any(r.measured for r in records)
        else ""
    )
