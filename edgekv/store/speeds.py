"""The user's own decode measurements, kept as JSONL under edgekv's user dir, and the model refit on them.

``edgekv bench`` records (its ``--json`` dicts) become :class:`edgekv.plan.speed.DecodeSample` rows with
the card's bandwidth added; :func:`user_speed_model` refits :data:`edgekv.plan.speed.DEFAULT_SPEED`
on them once there are enough; :func:`card_speed` pairs a named card with it (pick --gpu). speed.py stays
pure; the file I/O lives here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.logconfig import get_logger
from edgekv.plan.speed import (
    DEFAULT_RAM_BANDWIDTH,
    DEFAULT_SPEED,
    CardSpeed,
    DecodeSample,
    SpeedModel,
    StepLoad,
    fit,
)
from edgekv.settings import user_dir

if TYPE_CHECKING:
    from edgekv.plan.card import Card

log = get_logger(__name__)

MIN_SAMPLES = 3  # fewer: keep the published-card constants


def samples_path() -> Path:
    """``<user_dir>/speed/decode.jsonl``."""
    return user_dir() / "speed" / "decode.jsonl"


def samples_from_bench(
    records: Iterable[Mapping[str, Any]],
    *,
    bandwidth_bytes_per_s: float,
    ram_bandwidth_bytes_per_s: float | None = None,
    flops_per_s: float | None = None,
) -> list[DecodeSample]:
    """Decode samples from ``edgekv bench --json`` records that ran ("ok") on a card of that bandwidth,
    with every weight on the GPU (a record with experts in RAM, ``n_cpu_moe`` > 0, is left out: its step
    is mostly the CPU's, which these samples do not describe).

    bench times ``n_gen`` single-token steps of one sequence after ``depth`` cached tokens, so the
    average depth is depth + n_gen/2; KV bytes per token are the predicted KV over n_ctx, of the
    record's ``type_k`` (its attention efficiency; f16 when the record does not say). With the card's
    FP16 rate (``flops_per_s``) and the model file still at the record's ``path``, a sample also
    carries the attention FLOPs per cached token, so a quantized KV is fitted on the FLOPs basis pick
    predicts it on.
    """
    attn: dict[str, int] = {}
    out = []
    for r in records:
        if r.get("status") != "ok" or not r.get("decode_tps") or not r.get("predicted"):
            continue
        if int(r.get("n_cpu_moe") or 0) > 0:  # experts in RAM: the refit models the GPU's terms only (docs/speed.md)
            continue
        out.append(
            DecodeSample(
                load=StepLoad(
                    weights_gpu_bytes=int(r["predicted"]["weights"]),
                    kv_bytes_per_token=int(r["predicted"]["kv"]) // int(r["n_ctx"]),
                    kv_type=str(r.get("type_k") or "f16"),
                    attn_flops_per_token=_attn_flops(str(r.get("path") or ""), attn) if flops_per_s else 0,
                ),
                depth_tokens=int(r["depth"]) + int(r["n_gen"]) / 2,
                n_seq=1,
                bandwidth_bytes_per_s=bandwidth_bytes_per_s,
                measured_tps=float(r["decode_tps"]["median"]),
                ram_bandwidth_bytes_per_s=ram_bandwidth_bytes_per_s or DEFAULT_RAM_BANDWIDTH,
                flops_per_s=flops_per_s or 0.0,
            )
        )
    return out


def _attn_flops(path: str, cache: dict[str, int]) -> int:
    """The attention FLOPs per cached token of the GGUF at ``path`` (0 when it cannot be read)."""
    if path not in cache:
        from edgekv.errors import EdgekvError
        from edgekv.model.gguf_reader import read_spec
        from edgekv.plan.timing import spec_attn_flops

        try:
            cache[path] = spec_attn_flops(read_spec(path)) if path and os.path.isfile(path) else 0
        except (OSError, EdgekvError) as e:
            log.warning("%s: no attention FLOPs for the speed samples (%s)", path, e)
            cache[path] = 0
    return cache[path]


def append_samples(samples: Iterable[DecodeSample], *, path: Path | None = None) -> Path:
    """Add samples to the store (created on first use); returns its path."""
    path = path or samples_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for s in samples:
            f.write(json.dumps(s.record()) + "\n")
    return path


def load_samples(*, path: Path | None = None) -> list[DecodeSample]:
    """The stored samples; a missing store is empty and unreadable lines are skipped (logged)."""
    path = path or samples_path()
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError(f"a JSON {type(record).__name__}, not an object")
            out.append(DecodeSample.from_record(record))
        except (ValueError, TypeError) as e:
            log.warning("%s:%d: skipped (%s)", path, n, e)
    return out


def user_speed_model(
    *, bandwidth_bytes_per_s: float | None = None, path: Path | None = None, base: SpeedModel = DEFAULT_SPEED
) -> SpeedModel:
    """``base`` refit on the stored samples (those of a card of ``bandwidth_bytes_per_s`` when given)."""
    samples = load_samples(path=path)
    if bandwidth_bytes_per_s is not None:
        samples = [
            s for s in samples if abs(s.bandwidth_bytes_per_s - bandwidth_bytes_per_s) < 1e-6 * bandwidth_bytes_per_s
        ]
    if len(samples) < MIN_SAMPLES:
        return base
    return fit(samples, base=base)


def user_speed_model_n(
    *, bandwidth_bytes_per_s: float, path: Path | None = None, base: SpeedModel = DEFAULT_SPEED
) -> tuple[SpeedModel, int]:
    """(model, n): ``base`` refit on the n stored samples of a card of this bandwidth; n = 0 when
    there are fewer than MIN_SAMPLES (then ``base`` itself)."""
    samples = [
        s
        for s in load_samples(path=path)
        if abs(s.bandwidth_bytes_per_s - bandwidth_bytes_per_s) < 1e-6 * bandwidth_bytes_per_s
    ]
    if len(samples) < MIN_SAMPLES:
        return base, 0
    return fit(samples, base=base), len(samples)


def card_speed(card: Card, *, ram_bandwidth_bytes_per_s: float | None = None) -> CardSpeed | None:
    """The card with the speed model: refit on the user's own bench samples of it when there are
    enough, else the published-numbers fit; the RAM bandwidth given (``--ram-bandwidth``) or
    :data:`edgekv.plan.speed.DEFAULT_RAM_BANDWIDTH`. None when the card's bandwidth is unknown."""
    if card.bandwidth_bytes_per_s <= 0:
        return None
    model, n = user_speed_model_n(bandwidth_bytes_per_s=card.bandwidth_bytes_per_s)
    if ram_bandwidth_bytes_per_s is None:
        return CardSpeed(card, model, n_user_samples=n)
    return CardSpeed(card, model, n_user_samples=n, ram_bandwidth_bytes_per_s=ram_bandwidth_bytes_per_s,
                     ram_bandwidth_given=True)  # fmt: skip
