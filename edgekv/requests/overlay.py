"""The one overlay of a verb's flags on a plan file (``--plan``, written by ``edgekv pick --json``):
a flag beats the plan file, the plan file beats the verb's default, setting by setting: a flag overrides
only its own field (``--type-k`` alone keeps the plan's V). run, serve (through run's request) and eval
use it; the K/V pair that results is checked for flash attention when the run loads, as any other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgekv.model.quant import KvType
from edgekv.store.planfile import PlanSettings


@dataclass(frozen=True, slots=True)
class PlanFlags:
    """The settings a plan file holds, as a verb's flags give them; None (or ()) where not given."""

    model: str | None = None
    vram_bytes: int | list[int] | None = None
    cap_text: str | None = None  # how messages name the cap: as given, or "... (from the plan)"
    tensor_split: tuple[float, ...] = ()
    type_k: KvType | None = None
    type_v: KvType | None = None
    n_ctx: int | Literal["auto"] | None = None
    parallel: int | None = None
    n_gpu_layers: int | None = None


def overlay(flags: PlanFlags, plan: PlanSettings | None, *, per_device: bool) -> PlanFlags:
    """``flags``, each setting not given taken from ``plan`` (where the plan has it).

    The model is the plan's GGUF (:func:`plan_model_path`). ``per_device``: the verb runs a layer
    split (run): a split plan's cap per device and its shares; else (eval) the plan's total. The
    plan's KV types fill the halves no flag names, when the plan has both.
    """
    if plan is None:
        return flags
    from edgekv.units import format_bytes

    model = flags.model or plan_model_path(plan)
    vram, cap_text = flags.vram_bytes, flags.cap_text
    if vram is None and per_device and plan.vram_per_device:
        vram = list(plan.vram_per_device)
        cap_text = ",".join(format_bytes(c) for c in plan.vram_per_device) + " (from the plan)"
    elif vram is None and plan.vram_bytes:
        vram, cap_text = plan.vram_bytes, f"{format_bytes(plan.vram_bytes)} (from the plan)"
    split = flags.tensor_split
    if per_device and not split and plan.tensor_split and isinstance(vram, list):
        split = plan.tensor_split
    type_k, type_v = flags.type_k, flags.type_v
    if plan.type_k and plan.type_v:
        type_k = type_k if type_k is not None else plan.type_k
        type_v = type_v if type_v is not None else plan.type_v
    return PlanFlags(
        model=model, vram_bytes=vram, cap_text=cap_text, tensor_split=split, type_k=type_k, type_v=type_v,
        n_ctx=flags.n_ctx if flags.n_ctx is not None else plan.n_ctx or None,
        parallel=flags.parallel if flags.parallel is not None else plan.parallel or None,
        n_gpu_layers=flags.n_gpu_layers if flags.n_gpu_layers is not None else plan.n_gpu_layers,
    )  # fmt: skip


def plan_model_path(plan: PlanSettings) -> str:
    """The plan's GGUF: a local path (as given, or next to the plan), else huggingface_hub's cache."""
    from edgekv.errors import ModelFileNotFound

    local = plan.local_model()
    if local is not None:
        return str(local)
    if plan.repo and plan.file:
        from edgekv.hub.download import cached_file

        cached = cached_file(plan.repo, plan.file)
        if cached is not None:
            return str(cached)
    name = plan.file or plan.model_path or "the plan's model"
    raise ModelFileNotFound(
        f"{name} is not on this machine",
        hint=f"fetch it with edgekv download {plan.repo} --file {plan.file}" if plan.repo else "pass MODEL.gguf",
    )
