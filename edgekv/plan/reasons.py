"""Why a ranked plan is where it is, in words: one line per rule of the scale rule that placed it.

``policy.pick`` attaches these to the plans it returns (``Plan.reasons``); they name the regime
(rule 1/2), the weight precision for the task (rule 3), the length against saturation (rule 2),
the KV compression (rule 5), the parallel samples (rule 4) and any partial offload; and, for a model
counted at its Qwen3-equivalent size (``plan.capacity``), the size it ranks as and the scores it was
read from. Pure, stdlib only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edgekv.model.spec import Task
from edgekv.plan.plans import ModelOption, Plan, Policy, sizes
from edgekv.units import format_bytes


def capacity_reason(opt: ModelOption) -> str:
    """The cross-family line: "Phi-4-reasoning 14.7B ranks as a Qwen3-6.5B on published AIME24 75.3 -> 6.5B:
    its E and capacity count x0.44" (``plan.capacity``; a calibrated profile's own measurement says so)."""
    readings = opt.capacity_note.split("Qwen3-equivalent", 1)[-1].strip()
    if readings.startswith("(") and readings.endswith(")"):
        readings = readings[1:-1]
    where = "your measurements" if opt.capacity_source == "profile" else "published"
    return (
        f"{opt.name} {opt.n_params / 1e9:.1f}B ranks as a Qwen3-{opt.capacity_params / 1e9:.1f}B on {where} "
        f"{readings or 'scores'}: its E and capacity count x{opt.capacity_params / opt.n_params:.2f} "
        "(--capacity size: its own size)"
    )


def plan_reasons(plan: Plan, policy: Policy, best_alt: dict[str, Plan], capped: Sequence[Plan]) -> tuple[str, ...]:
    """The reasons of a ranked ``plan``. ``best_alt``: the f16-KV plan of each model+quant (name +
    quant -> plan), to say how many tokens f16 KV would leave; ``capped``: the plans whose capacity
    below E1 counts at 8 bits, named when they rank under this one."""
    opt = plan.option
    e1 = format_bytes(policy.e1_bytes)
    out: list[str] = []
    e16, e8 = sizes(opt, policy)  # as the rule counts them: precision caps, then the Qwen3-equivalent size
    raw16, raw8 = sizes(opt, replace(policy, capacity="size"))  # the precision caps alone (rule 3)
    ratio = opt.capacity_ratio(policy)
    e = format_bytes(opt.effective_bytes) + (f" (counted {format_bytes(e16)})" if ratio != 1.0 else "")
    if ratio != 1.0:
        out.append(capacity_reason(opt))
    if plan.regime == "capacity":
        out.append(f'effective size {e} is below E1 = {e1} ("8-bit 4B"): memory goes to model capacity first (rule 1)')
    elif e16 >= policy.e1_bytes:
        out.append(f"effective size {e} is at or above E1 = {e1}: memory goes to generation length first (rule 2)")
    else:
        out.append(
            f'effective size {e} is within {policy.similar:.0%} of E1 = {e1} (the GGUF of "8-bit 4B" itself): '
            "memory goes to generation length first (rule 2)"
        )
    if raw16 < opt.effective_bytes:
        out.append(f"{opt.quant} counts as 16-bit ({format_bytes(raw16)}): 32-bit weights buy no accuracy over 16-bit")
    if policy.task == Task.KNOWLEDGE:
        out.append("knowledge task: more parameters matter more than more bits; 4-bit is fine (rule 3)")
    elif plan.regime == "capacity" and raw8 < opt.effective_bytes:
        out.append(
            f"{policy.task.value}: {opt.quant} weights count as 8-bit ({format_bytes(raw8)}) below E1: "
            "8-bit is best for small models (rule 3)"
        )
    elif opt.bits_class >= 3:
        out.append(
            f"{policy.task.value}: {opt.quant} keeps 8/16-bit weights; "
            "4-bit is memory-inefficient for reasoning (rule 3)"
        )
    elif opt.bits_class >= 0:
        out.append(
            f"{policy.task.value}: {opt.quant} is the most precise quant of a model this size that fits (rule 3)"
        )
    for c in capped:
        if c.option is not opt and c.sort_key < plan.sort_key and c.option.effective_bytes > opt.effective_bytes:
            ce8 = sizes(c.option, replace(policy, capacity="size"))[1]
            out.append(
                f"{c.option.name} {c.option.quant} (E {format_bytes(c.option.effective_bytes)}, {c.n_ctx_seq} tokens) "
                f"counts as its 8-bit size {format_bytes(ce8)} below E1: "
                f"{c.option.weight_bits}-bit weights buy a small model nothing over 8-bit (rule 3)"
            )
    sat = policy.saturation_tokens
    if plan.n_ctx_seq >= sat:
        out.append(f"{plan.n_ctx_seq} tokens per sample reach saturation ({sat}) (rule 2)")
    else:
        out.append(f"{plan.n_ctx_seq} tokens per sample, below saturation ({sat}): the card is full")
    if plan.type_v.quantized or plan.type_k.quantized:
        alt = best_alt.get(plan.option.name + plan.option.quant)
        more = (
            f"; f16 KV would leave {alt.n_ctx_seq} tokens" if alt is not None and alt.n_ctx_seq < plan.n_ctx_seq else ""
        )
        if plan.kv_4bit:
            out.append(
                f"4-bit KV ({plan.kv_label}) only because nothing else reaches {policy.token_floor} tokens (rule 5)"
            )
        else:
            out.append(f"8-bit KV ({plan.kv_label}) is the compression of choice (rule 5){more}")
    if plan.parallel > 1:
        out.append(
            f"{plan.parallel} parallel samples for majority voting with the memory left after saturation (rule 4)"
        )
    if plan.n_cpu_moe:
        host = plan.footprint.host_total
        out.append(
            f"experts of {plan.n_cpu_moe}/{opt.spec.n_layer} blocks in system RAM (llama.cpp --n-cpu-moe "
            f"{plan.n_cpu_moe}; RAM side {host / 2**30:.2f} GiB); decode about {plan.offload_slowdown:.1f}x the time "
            "of a dense model of its capacity on the GPU"
        )
    if plan.n_gpu_layers >= 0:
        out.append(
            f"partial offload: {plan.n_gpu_layers}/{opt.spec.n_layer + 1} layers on the GPU; "
            f"decode about {plan.offload_slowdown:.1f}x slower (weights read from system RAM each token)"
        )
    return tuple(out)
