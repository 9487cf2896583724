"""The rule's plans across more than one device (llama.cpp's layer split, ``devices``).

``policy.enumerate_plans`` and ``policy.pick``'s nothing-fits message come here when the budget
has several devices: every plan is fully offloaded and each device's part must fit its own cap.
Imported only then, so the one-card path does not load the multi-device model. Pure, stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from edgekv.errors import NoFeasiblePlan
from edgekv.plan import devices as multi
from edgekv.plan.fit import context_cap
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig
from edgekv.plan.plans import Budget, ModelOption, Plan, Policy
from edgekv.units import format_bytes


def device_terms(opt: ModelOption, cfg: RunConfig, budget: Budget) -> multi.DeviceTerms:
    """``fit_terms`` for a split: the option's layout, its compute figures for each device's
    estimate, the per-device overhead and margin."""
    figs = opt.compute_figures(cfg.n_ubatch) if budget.include_compute else None
    return multi.DeviceTerms(
        budget.tensor_split, opt.layout, None, figs, budget.overhead_for(opt, cfg), budget.margin_bytes,
        budget.include_compute,
    )  # fmt: skip


def enumerate_split_plans(options: Iterable[ModelOption], budget: Budget, policy: Policy) -> list[Plan]:
    """``policy.enumerate_plans`` across devices: full offload, every device under its cap."""
    plans: list[Plan] = []
    for opt in options:
        cap = context_cap(opt.spec)
        for k, v in policy.kv_pairs(opt.spec):
            base = RunConfig(n_ctx=KV_PAD_CELLS, type_k=k, type_v=v, n_ubatch=policy.n_ubatch, flash_attn=True)
            max_g = policy.max_parallel if opt.effective_bytes >= policy.e1_bytes else 1
            for g in range(1, max_g + 1):
                cfg = replace(base, n_seq=g, tensor_split=budget.tensor_split)
                terms = device_terms(opt, cfg, budget)
                t, fps = multi.largest_tokens_multi(opt.spec, cfg, budget.devices, terms, cap_tokens=cap)
                if fps is None or (g > 1 and t < policy.saturation_tokens):
                    break
                fp = multi.combined(fps, layout=opt.layout)
                plans.append(
                    Plan(opt, k, v, t, g, -1, fp, "", device_footprints=tuple(fps), tensor_split=cfg.tensor_split)
                )
    return plans


def no_split_plan(options: Sequence[ModelOption], budget: Budget, pol: Policy) -> NoFeasiblePlan:
    small_kv = min(pol.kv_types, key=lambda k: k.bits)
    n_tokens = max(pol.min_ctx, KV_PAD_CELLS)
    best: tuple[int, str, list[str]] | None = None
    for opt in options:
        cfg = RunConfig(n_ctx=n_tokens, type_k=small_kv, type_v=small_kv, n_ubatch=pol.n_ubatch)
        cfg = replace(cfg, tensor_split=budget.tensor_split)
        fps = multi.multi_footprint(opt.spec, cfg, device_terms(opt, cfg, budget))
        over = sum(max(f.gpu_total - d.vram_bytes, 0) for f, d in zip(fps, budget.devices, strict=True))
        if best is None or over < best[0]:
            best = (over, f"{opt.name} {opt.quant}", multi.shortfalls(fps, budget.devices))
    assert best is not None
    over, label, short = best
    caps = " + ".join(format_bytes(d.vram_bytes) for d in budget.devices)
    split = ",".join(f"{x:g}" for x in budget.tensor_split)
    return NoFeasiblePlan(
        f"nothing fits {caps} split {split}: the smallest option, {label} at {n_tokens} tokens with "
        f"{small_kv.value} KV: " + "; ".join(short),
        need_bytes=budget.vram_bytes + over,
        have_bytes=budget.vram_bytes,
        hint="try another --tensor-split, a smaller --margin/--overhead, a lower --min-ctx or a smaller model family",
    )
