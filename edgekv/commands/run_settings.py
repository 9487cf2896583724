"""``edgekv run``'s settings: its flags, the --plan file's values where no flag is given, and --gpu's
memory as the cap when there is no --vram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from edgekv.commands.card_options import resolve_card, vram_option
from edgekv.commands.options import context_option, given, input_file, plan_model_path, tensor_split_option


@dataclass(frozen=True)
class RunSettings:
    """The model, the memory cap (and how the messages name it), the context, G and the layers on the GPU."""

    model: str | None
    vram_bytes: int | list[int] | None
    cap_text: str | None  # as given, "... (from the plan)" or "... (the card's name)"
    split: tuple[float, ...]
    n_ctx: int
    auto_ctx: bool
    parallel: int
    ngl: int
    plan_kv: tuple[Any, Any] | None  # the plan's (K, V) when none of --kv/--type-k/--type-v is given


def run_settings(ctx: click.Context, model: str | None, o: dict[str, Any]) -> RunSettings:
    """The flags; then the --plan file's values where the flag was not given; then the --gpu card's
    memory as the cap when --vram is not given."""
    from edgekv.store.planfile import read_plan
    from edgekv.units import format_bytes

    plan = read_plan(input_file(o["plan_path"], what="plan file")) if o["plan_path"] is not None else None
    vram_bytes = vram_option(o["vram"]) if o["vram"] is not None else None
    split = tuple(tensor_split_option(o["tensor_split"])) if o["tensor_split"] else ()
    cap_text = o["vram"]
    n_ctx, auto = context_option(o["ctx_text"])
    parallel, ngl, plan_kv = o["parallel"], o["ngl"], None
    if plan is not None:
        model = model or plan_model_path(plan)
        if not given(ctx, "vram") and plan.vram_per_device:
            vram_bytes = list(plan.vram_per_device)
            cap_text = ",".join(format_bytes(c) for c in plan.vram_per_device) + " (from the plan)"
        elif not given(ctx, "vram") and plan.vram_bytes:
            vram_bytes, cap_text = plan.vram_bytes, f"{format_bytes(plan.vram_bytes)} (from the plan)"
        if not split and plan.tensor_split and isinstance(vram_bytes, list):
            split = plan.tensor_split
        if all(o[k] is None for k in ("kv", "type_k", "type_v")) and plan.type_k and plan.type_v:
            plan_kv = (plan.type_k, plan.type_v)
        if not given(ctx, "ctx_text") and plan.n_ctx:
            n_ctx, auto = plan.n_ctx, False
        parallel = plan.parallel if not given(ctx, "parallel") and plan.parallel else parallel
        ngl = plan.n_gpu_layers if not given(ctx, "ngl") and plan.n_gpu_layers is not None else ngl
    if o["gpu"] and o["vram"] is None:  # the named card's memory as the cap (--vram still wins)
        card = resolve_card(o["gpu"])
        if card.card is not None and isinstance(card.vram_bytes, int):
            vram_bytes, cap_text = card.vram_bytes, f"{format_bytes(card.vram_bytes)} ({card.card.name})"
    return RunSettings(model, vram_bytes, cap_text, split, n_ctx, auto, parallel, ngl, plan_kv)
