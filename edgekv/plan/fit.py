"""The one fit search: the largest context per sample (T) that G samples fit in a memory budget.

Used by ``pick`` (every plan's T), by ``run``/``bench``'s pre-flight and ``--ctx auto``, and by
``eval``. Pure arithmetic over ``memory.footprint``: the same model, card, margin and settings
give the same T wherever it is asked.

T is a multiple of 256 (llama.cpp pads every KV stream to 256 cells) and at most the model's
trained context (``DEFAULT_TRAIN_CTX`` when the file does not say). The search is exact: the
footprint is non-decreasing in T, a closed-form guess from the per-cell KV cost is checked, and
a binary search takes over where the guess is off (sliding-window layers make the KV piecewise
linear).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgekv.model.spec import ModelSpec
from edgekv.plan.bounds import context_tokens
from edgekv.plan.memory import (
    DEFAULT_MARGIN_BYTES,
    KV_PAD_CELLS,
    ComputeFigures,
    Footprint,
    KvCost,
    RunConfig,
    WeightLayout,
    footprint,
    gpu_layer_start,
    kv_cost,
)

DEFAULT_TRAIN_CTX = 131072  # used when a GGUF has no <arch>.context_length (llama.cpp then uses the n_ctx asked)


def context_cap(spec: ModelSpec) -> int:
    """The largest T per sample: the trained context (at most ``bounds.MAX_TOKENS``: a header may claim
    2^32-1), in whole 256-cell steps."""
    per_seq = context_tokens(spec.n_ctx_train or DEFAULT_TRAIN_CTX)
    return max(KV_PAD_CELLS, per_seq // KV_PAD_CELLS * KV_PAD_CELLS)


@dataclass(frozen=True, slots=True)
class FitTerms:
    """What the footprint needs besides T: the fixed terms and the KV cost, computed once."""

    layout: WeightLayout | None = None  # None = from the spec's tensors
    compute_bytes: int | None = None  # a buffer measured for this very config (dry run); None = the term at each T
    compute_source: str | None = None
    overhead_bytes: int | None = None  # None = the measured CUDA overhead
    margin_bytes: int = DEFAULT_MARGIN_BYTES
    figures: ComputeFigures | None = None  # the model's measured compute figures; None = estimated from shapes


def footprint_at(
    spec: ModelSpec, cfg: RunConfig, terms: FitTerms, *, costs: tuple[KvCost, KvCost] | None = None
) -> Footprint:
    """``memory.footprint`` of ``cfg`` with ``terms``."""
    return footprint(
        spec,
        cfg,
        layout=terms.layout,
        compute_bytes=terms.compute_bytes,
        compute_source=terms.compute_source,
        overhead_bytes=terms.overhead_bytes,
        margin_bytes=terms.margin_bytes,
        costs=costs,
        figures=terms.figures,
    )


def kv_costs(spec: ModelSpec, cfg: RunConfig) -> tuple[KvCost, KvCost]:
    """(KV cost of every layer, of the layers on the GPU) for ``cfg``'s types and offload."""
    every = kv_cost(spec, cfg.type_k, cfg.type_v)
    start = gpu_layer_start(spec.n_layer, cfg.n_gpu_layers)
    return every, (kv_cost(spec, cfg.type_k, cfg.type_v, first_layer=start) if start else every)


def largest_tokens_per_seq(
    spec: ModelSpec,
    cfg: RunConfig,
    *,
    have_bytes: int,
    terms: FitTerms = FitTerms(),
    cap_tokens: int | None = None,
    costs: tuple[KvCost, KvCost] | None = None,
) -> tuple[int, Footprint | None]:
    """The largest T (multiple of 256, <= cap) for which ``cfg.n_seq`` samples fit ``have_bytes``.

    ``costs``: ``kv_costs(spec, cfg)`` when the caller already has them (they do not depend on G).
    Returns (T, its footprint), or (0, None) when not even 256 tokens fit.
    """
    g = max(cfg.n_seq, 1)
    cap = (cap_tokens if cap_tokens is not None else context_cap(spec)) // KV_PAD_CELLS
    if costs is None:
        costs = kv_costs(spec, cfg)
    memo: dict[int, Footprint] = {}

    def at(steps: int) -> Footprint:
        if steps not in memo:
            memo[steps] = footprint_at(spec, cfg.with_ctx(steps * KV_PAD_CELLS * g), terms, costs=costs)
        return memo[steps]

    steps = largest_fitting_steps(lambda s: (at(s).gpu_total,), (have_bytes,), cap)
    return (steps * KV_PAD_CELLS, at(steps)) if steps else (0, None)


def largest_fitting_steps(need: Callable[[int], Sequence[int]], have: Sequence[int], cap: int) -> int:
    """The search itself: the largest ``s`` in 1..cap with ``need(s)[d] <= have[d]`` on every device
    ``d`` (``need`` non-decreasing in ``s``; callers memoize it); 0 when not even ``s = 1`` fits.

    A closed-form guess from each device's slope between one and two steps (the smallest over the
    devices), checked with its neighbour, then a binary search where the guess is off.
    """

    def fits(steps: int) -> bool:
        return all(n <= h for n, h in zip(need(steps), have, strict=True))

    if cap < 1 or not fits(1):
        return 0
    guess = cap
    if cap >= 2:
        for n1, n2, h in zip(need(1), need(2), have, strict=True):
            if n2 > n1:
                guess = min(guess, max(1, 1 + (h - n1) // (n2 - n1)))
    if fits(guess) and (guess == cap or not fits(guess + 1)):
        return guess
    lo, hi = (guess, cap) if fits(guess) else (1, guess - 1)
    while lo < hi:  # invariant: lo fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo
