"""The scale rule (../shared/paper.md) as a ranking of configurations that fit a card.

Pure module (stdlib only). A *plan* is model x weight quant x KV type x context per sample (T)
x parallel samples (G) x offloaded layers, with every byte accounted by ``memory``. Plans are
ranked by a sort key built from the paper's rules, in this order:

1. The plan reaches the token floor (T >= ``token_floor``): a reasoning model cut off before it
   finishes is worth little (the paper's budgets start at 2k; we ask 4k by default).
2. 4-bit KV only when no f16/q8_0 plan reaches the floor (rule 5: 4-bit KV costs accuracy).
3. Regime. Effective size E (GGUF weight bytes) below E1 = 4.19 GiB ("8-bit 4B") is the
   *capacity* regime; at or above it the *generation* regime, which ranks above capacity.
   Choice: E is compared with E1 x (1 - ``similar``) because llama.cpp's Q8_0 of the threshold
   model itself (Qwen3-4B, 8.5 bits/weight with 8-bit embeddings) is 3.98 GiB, while the paper's
   4.19 GiB counts 16-bit embeddings (GPTQ accounting). ``similar`` = 0.10 by default.
4. Capacity regime (rule 1): larger capacity first (knowledge: more parameters first), then the
   precision class for the task, then longer T, then (equal capacity) fewer bytes.
   Capacity is E with weights above 8 bits counted as 8-bit: a 16-bit (or F32) model below E1
   ranks by the size of its Q8_0 sibling (``ModelOption.sibling_bytes``, else E x 8.5/bits).
   Why: rule 3 says 8-bit is best for small models and 16-bit only pays for large ones; 16-bit
   costs twice the bytes and buys a small model no accuracy, so its bytes are not capacity
   (issue #10: Qwen3-1.7B BF16, 3.21 GiB, outranked Qwen3-4B Q6_K at 3.5 GiB). So a model's BF16
   never outranks its own Q8_0 below E1 unless it leaves more tokens (below saturation).
   Generation regime (rules 2-4): the precision class for the task first (math/code: 8/16-bit
   over 6 over 5 over 4 over 3-bit, "fewer parameters at 8/16 bits over more at 4 bits";
   knowledge: any >= 4-bit alike, then more parameters before length), then T up to ``saturation_tokens``,
   then E up to E2 = 8.94 GiB, then G (rule 4), then more parameters, then E beyond E2.
   Choice: beyond E2 the paper's frontier buys parallel samples (G in 4..7 for 16-29 GB), so
   past E2 more samples rank above a bigger model of the same precision. G > 1 is only
   offered at E >= E1, strictly (rule 4).
5. Last: less KV compression (f16 over q8_0 over q4_0) and full offload over partial.

Where else bytes could stand in for precision (``Policy.cap_precision``, on by default; off =
every E is the file's bytes, the old rule):
- F32 weights count as 16-bit everywhere (regime, G, size): the paper's E is parameters x bits
  with 16 bits its top precision; F32 of a BF16-trained model holds the same values.
- BF16 and F16 are alike (same bytes, same class); the catalog keeps the one the repo publishes.
- Q8_0 vs Q6_K near E1: left to the rule as is. Qwen3-4B Q8_0 (3.98 GiB) is in the generation
  regime through ``similar`` and ranks above any capacity plan; Q6_K (3.07 GiB) is capacity and
  ranks by its bytes against other models (rule 1: "a larger model at 4 bits can beat a smaller
  model at 8 bits"). Below 8 bits, bytes do track precision, so no cap applies there.
- At or above E1, 16-bit keeps counting (rule 3: "8- or 16-bit for large ones").

Capacity from published scores (``Policy.capacity``, "published" by default; "size" = E alone, the
old rule): a model whose catalog entry has reasoning scores counts as its Qwen3-equivalent size, read
on the curve of the Qwen3 dense models' thinking-mode scores (Qwen3 Technical Report,
arXiv:2505.09388, tables 13-19: AIME'24 and AIME'25; MATH-500 is saturated and not used), piecewise
linear in log(parameters), the geometric mean over the benchmarks (``edgekv.plan.capacity``). E,
its 8-bit capacity and the parameter count of the knowledge task are scaled by that size over the
model's own: Qwen3-30B-A3B (80.4 / 70.9, Table 15) reads as 19.7B, so its E is 0.65 of its bytes;
gpt-oss-20b at reasoning effort medium (80.0 / 72.1, model card arXiv:2508.10925 Table 3) as 22.1B.
The dense Qwen3 models read back their own size (unchanged); models without scores keep their size.

Ambiguity kept as a setting: the paper puts the eviction/quantization crossover at E1 (intro)
and at E2 (KV section). llama.cpp has no R-KV eviction, only a bounded, shifting context, which
the paper found weaker than R-KV; edgekv therefore never proposes eviction and uses KV
quantization (8-bit first) at every size: ``Policy.eviction`` is "never" and is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from edgekv.errors import NoFeasiblePlan
from edgekv.model.quant import KvType
from edgekv.model.spec import Task
from edgekv.plan.fit import FitTerms, context_cap, footprint_at, kv_costs, largest_tokens_per_seq
from edgekv.plan.memory import (
    KV_PAD_CELLS,
    Footprint,
    KvCost,
    RunConfig,
)
from edgekv.plan.plans import Budget, ModelOption, PickResult, Plan, Policy, sizes
from edgekv.plan.reasons import plan_reasons
from edgekv.units import format_bytes


def fit_terms(opt: ModelOption, cfg: RunConfig, budget: Budget) -> FitTerms:
    """The fixed terms of ``opt`` under ``budget``: its weight layout, the figures of its compute
    buffer (the buffer itself grows with T: ``memory.compute_bytes_term`` at each T), overhead, margin."""
    overhead, margin = budget.overhead_for(opt, cfg), budget.margin_bytes
    if not budget.include_compute:
        return FitTerms(opt.layout, 0, "not counted", overhead, margin)
    return FitTerms(opt.layout, None, None, overhead, margin, opt.compute_figures(cfg.n_ubatch))


def max_tokens_per_seq(
    opt: ModelOption, cfg: RunConfig, budget: Budget, *, cap: int, costs: tuple[KvCost, KvCost] | None = None
) -> tuple[int, Footprint | None]:
    """The largest T (multiple of 256, <= cap) for which G = cfg.n_seq samples fit the budget (``fit``)."""
    return largest_tokens_per_seq(
        opt.spec, cfg, have_bytes=budget.vram_bytes, terms=fit_terms(opt, cfg, budget), cap_tokens=cap, costs=costs
    )


def _kv_rank(k: KvType, v: KvType) -> float:
    return -(k.bits + v.bits)  # less compression ranks higher when all else ties


def _offload_slowdown(opt: ModelOption, ngl: int) -> float:
    """Decode reads every weight byte per token; host RAM is ~10x slower than GDDR/HBM."""
    if ngl < 0:
        return 1.0
    gpu, host = opt.layout.split(ngl)
    host -= opt.layout.input_bytes  # the input embedding is a row lookup, not a matmul
    frac = max(host, 0) / max(gpu + host, 1)
    return 1.0 + 9.0 * frac  # 1 + (bw_gpu / bw_host - 1) * frac, bw ratio ~10


TokenCap = Callable[[ModelOption, RunConfig], int]  # a caller's limit on T per sample (pick --max-time)


def enumerate_plans(
    options: Iterable[ModelOption], budget: Budget, policy: Policy, *, token_cap: TokenCap | None = None
) -> list[Plan]:
    """Every (option, KV pair, G[, offload]) with its largest fitting T (unranked), T <= ``token_cap``."""
    if len(budget.devices) > 1:
        from edgekv.plan.split_plans import enumerate_split_plans  # several devices only

        return enumerate_split_plans(options, budget, policy)
    plans: list[Plan] = []
    for opt in options:
        cap = context_cap(opt.spec)
        for k, v in policy.kv_pairs(opt.spec):
            base = RunConfig(n_ctx=KV_PAD_CELLS, type_k=k, type_v=v, n_ubatch=policy.n_ubatch, flash_attn=True)
            big = sizes(opt, policy)[0] >= policy.e1_bytes and budget.vram_bytes >= policy.parallel_min_bytes
            max_g = policy.max_parallel if big else 1
            costs = kv_costs(opt.spec, base)  # the same for every G
            for g in range(1, max_g + 1):
                cfg = replace(base, n_seq=g)
                t, fp = max_tokens_per_seq(opt, cfg, budget, cap=_cap(cap, token_cap, opt, cfg), costs=costs)
                if fp is None or (g > 1 and t < policy.saturation_tokens):
                    break
                plans.append(Plan(opt, k, v, t, g, -1, fp, ""))
            if policy.allow_offload and budget.ram_bytes != 0:
                plans.extend(_offload_plans(opt, k, v, budget, policy, cap, token_cap))
            if opt.layout.expert_bytes and budget.ram_bytes:  # RAM unknown (None) or 0: experts stay on the GPU
                plans.extend(_moe_plans(opt, k, v, budget, policy, cap, token_cap))
    if budget.ram_bytes:
        plans = [p for p in plans if p.footprint.host_total <= budget.ram_bytes]
    return plans


def _cap(cap: int, token_cap: TokenCap | None, opt: ModelOption, cfg: RunConfig) -> int:
    return cap if token_cap is None else min(cap, token_cap(opt, cfg))


def _offload_plans(
    opt: ModelOption, k: KvType, v: KvType, budget: Budget, policy: Policy, cap: int, token_cap: TokenCap | None = None
) -> list[Plan]:
    """The most-offloaded layer count that still reaches min(saturation, cap) tokens (G = 1)."""
    n_layer = opt.spec.n_layer
    target = min(policy.saturation_tokens, cap)
    out: list[Plan] = []
    for ngl in range(n_layer, 0, -1):
        slowdown = _offload_slowdown(opt, ngl)
        if slowdown > policy.max_offload_slowdown:
            break
        cfg = RunConfig(n_ctx=KV_PAD_CELLS, type_k=k, type_v=v, n_ubatch=policy.n_ubatch, n_gpu_layers=ngl)
        t, fp = max_tokens_per_seq(opt, cfg, budget, cap=_cap(cap, token_cap, opt, cfg))
        if fp is not None and t >= min(target, max(policy.token_floor, policy.min_ctx)):
            out.append(Plan(opt, k, v, t, 1, ngl, fp, "", offload_slowdown=slowdown))
            break
    return out


def moe_slowdown(opt: ModelOption, n_cpu_moe: int, policy: Policy) -> float:
    """Decode time per token of a MoE plan with the experts of ``n_cpu_moe`` blocks in RAM, relative
    to a dense model of the same capacity (``ModelOption.capacity_ratio``) read wholly from the GPU.

    A MoE reads per token its non-expert weights and ``n_expert_used / n_expert`` of its experts;
    host RAM is taken as 10x slower than the card (as ``_offload_slowdown``). Choice: relative to a
    dense model of its capacity, not to itself on a card that would hold it whole: what matters is
    whether the plan beats what the same memory buys otherwise (``max_offload_slowdown`` applies).
    At least 1."""
    lay, spec = opt.layout, opt.spec
    frac = spec.n_expert_used / spec.n_expert if spec.n_expert else 1.0
    experts = sum(lay.expert_bytes)
    host_exp = lay.host_experts(-1, n_cpu_moe)
    dense = sum(lay.layer_bytes) - experts + lay.output_bytes
    t = dense + frac * (experts - host_exp) + 10.0 * frac * host_exp
    ref = opt.capacity_ratio(policy) * (sum(lay.layer_bytes) + lay.output_bytes)
    return max(1.0, t / max(ref, 1.0))


def _moe_plans(
    opt: ModelOption, k: KvType, v: KvType, budget: Budget, policy: Policy, cap: int, token_cap: TokenCap | None = None
) -> list[Plan]:
    """The fewest blocks' experts in RAM (``n_cpu_moe``, G = 1, every layer on the GPU) that reach
    min(saturation, cap) tokens, else all of them if that reaches the floor; none when full offload
    already reaches it (the plain plan) or the host side does not fit ``budget.ram_bytes``."""
    n_layer = opt.spec.n_layer
    target = min(policy.saturation_tokens, cap)
    floor = min(target, max(policy.token_floor, policy.min_ctx))

    def at(n: int) -> tuple[int, Footprint | None]:
        cfg = RunConfig(n_ctx=KV_PAD_CELLS, type_k=k, type_v=v, n_ubatch=policy.n_ubatch, n_cpu_moe=n)
        return max_tokens_per_seq(opt, cfg, budget, cap=_cap(cap, token_cap, opt, cfg))

    if at(0)[0] >= target:
        return []
    lo, hi = 1, n_layer  # the smallest n reaching the target: T grows with n
    if at(hi)[0] < target:
        lo = hi
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if at(mid)[0] >= target else (mid + 1, hi)
    t, fp = at(lo)
    slowdown = moe_slowdown(opt, lo, policy)
    if fp is None or t < floor or slowdown > policy.max_offload_slowdown:
        return []
    if budget.ram_bytes and fp.host_total > budget.ram_bytes:
        return []
    return [Plan(opt, k, v, t, 1, -1, fp, "", offload_slowdown=slowdown, n_cpu_moe=lo)]


def regime(opt: ModelOption, policy: Policy) -> str:
    """ "capacity" below E1 (within ``similar``), else "generation"; E as ``sizes`` counts it."""
    return "generation" if sizes(opt, policy)[0] >= policy.e1_bytes * (1 - policy.similar) else "capacity"


def rank_key(plan: Plan, policy: Policy, *, q4_needed: bool) -> tuple[float, ...]:
    """The sort key (larger is better); see the module docstring for the order and why."""
    opt = plan.option
    floor = max(policy.token_floor, policy.min_ctx)
    floor_ok = float(plan.n_ctx_seq >= floor)
    kv_ok = float(q4_needed or policy.q4_kv_ok or not plan.kv_4bit)
    t_eff = float(min(plan.n_ctx_seq, policy.saturation_tokens))
    e16, e8 = (float(x) for x in sizes(opt, policy))
    knowledge = policy.task == Task.KNOWLEDGE
    prec = float(opt.bits_class if not (knowledge or policy.flat_precision) else min(opt.bits_class, 0))
    tail = (_kv_rank(plan.type_k, plan.type_v), -plan.offload_slowdown)
    if e16 < policy.e1_bytes * (1 - policy.similar):  # the capacity regime (``regime``)
        size = float(opt.rule_params(policy)) if knowledge else e8
        spare = -float(opt.effective_bytes) if policy.cap_precision else 0.0  # equal capacity: fewer bytes
        return (floor_ok, kv_ok, 0.0, size, prec, t_eff, e8, spare, 0.0) + tail
    params = float(opt.rule_params(policy))
    if knowledge:  # more parameters first, then length, then samples
        return (floor_ok, kv_ok, 1.0, prec, params, t_eff, float(plan.parallel), e16, 0.0) + tail
    size = min(e16, float(policy.e2_bytes))
    return (floor_ok, kv_ok, 1.0, prec, t_eff, size, float(plan.parallel), params, e16) + tail


def pick(
    options: Sequence[ModelOption],
    budget: Budget,
    policy: Policy | None = None,
    *,
    top: int = 5,
    plans: Sequence[Plan] | None = None,
    token_cap: TokenCap | None = None,
) -> PickResult:
    """Rank every plan that fits ``budget`` by the scale rule; one best plan per model+quant.

    ``plans``: ``enumerate_plans`` of a superset of ``options`` on this budget with this policy's
    KV, offload and parallel settings (a walk over tasks or families enumerates once).
    ``token_cap(option, config)`` bounds T per sample (``edgekv.plan.timing.token_cap``: --max-time).

    Raises:
        NoFeasiblePlan: nothing fits; carries what the smallest option needs.
    """
    pol = policy or Policy()
    if plans is None:
        plans = enumerate_plans(options, budget, pol, token_cap=token_cap)
    else:  # enumerated before for this card (the task does not change the enumeration)
        keys = {(o.name, o.quant) for o in options}
        plans = [p for p in plans if (p.option.name, p.option.quant) in keys]
    enumerated = tuple(plans)
    floor = max(pol.token_floor, pol.min_ctx)
    if pol.min_ctx:
        plans = [p for p in plans if p.n_ctx_seq >= pol.min_ctx]
    if not plans:
        raise _no_plan(options, budget, pol, floor)
    q4_needed = not any(p.n_ctx_seq >= floor and not p.kv_4bit for p in plans)
    f16_best: dict[str, Plan] = {}
    for p in plans:
        if p.type_k == KvType.F16 and p.type_v == KvType.F16 and p.parallel == 1:
            f16_best[p.option.name + p.option.quant] = p
    keyed = sorted(((rank_key(p, pol, q4_needed=q4_needed), p) for p in plans), key=lambda kp: kp[0], reverse=True)
    best: dict[tuple[str, str], Plan] = {}
    for key, p in keyed:  # one best plan per model + quant; only these are copied with their key
        if (p.option.name, p.option.quant) not in best:
            best[(p.option.name, p.option.quant)] = replace(p, regime=regime(p.option, pol), sort_key=key)
    # options whose capacity below E1 is counted at 8 bits (said in the reasons of the plans above them): the
    # precision cap of rule 3 only, not a smaller Qwen3-equivalent size (that has its own reason)
    by_size = replace(pol, capacity="size")
    capped = [
        p for p in best.values() if p.regime == "capacity" and sizes(p.option, by_size)[1] < p.option.effective_bytes
    ]
    top_plans = list(best.values())[:top] if top > 0 else list(best.values())
    top_plans = [replace(p, reasons=plan_reasons(p, pol, f16_best, capped)) for p in top_plans]
    base = uniform_4bit_baseline(plans)
    if base is not None:
        base = replace(base, regime=regime(base.option, pol), sort_key=rank_key(base, pol, q4_needed=q4_needed))
        base = replace(base, reasons=plan_reasons(base, pol, f16_best, capped))
    n_models = len({o.name for o in options})
    return PickResult(top_plans, base, pol, budget, len(plans), enumerated, n_models=n_models)


def uniform_4bit_baseline(plans: Iterable[Plan]) -> Plan | None:
    """The usual default: the largest model at Q4_K_M with f16 KV, one sample, full offload."""
    cands = [
        p for p in plans
        if p.option.quant.upper() == "Q4_K_M" and p.type_k == KvType.F16 and p.type_v == KvType.F16
        and p.parallel == 1 and p.n_gpu_layers < 0 and not p.n_cpu_moe
    ]  # fmt: skip
    if not cands:
        return None
    return max(cands, key=lambda p: (p.option.n_params or p.option.effective_bytes, p.n_ctx_seq))


def _no_plan(options: Sequence[ModelOption], budget: Budget, pol: Policy, floor: int) -> NoFeasiblePlan:
    if options and len(budget.devices) > 1:
        from edgekv.plan.split_plans import no_split_plan  # several devices only

        return no_split_plan(options, budget, pol)
    if not options:
        return NoFeasiblePlan(
            "no model to consider (check --family/--model)", need_bytes=0, have_bytes=budget.vram_bytes
        )
    need: list[tuple[int, str]] = []
    small_kv = min(pol.kv_types, key=lambda k: k.bits)
    for opt in options:
        cfg = RunConfig(n_ctx=max(pol.min_ctx, KV_PAD_CELLS), type_k=small_kv, type_v=small_kv, n_ubatch=pol.n_ubatch)
        fp = footprint_at(opt.spec, cfg, fit_terms(opt, cfg, budget))
        need.append((fp.gpu_total, f"{opt.name} {opt.quant}"))
    n_bytes, label = min(need)
    short = n_bytes - budget.vram_bytes
    return NoFeasiblePlan(
        f"nothing fits {format_bytes(budget.vram_bytes)}: the smallest option, {label} at "
        f"{max(pol.min_ctx, KV_PAD_CELLS)} tokens with {small_kv.value} KV, needs {format_bytes(n_bytes)} "
        f"({format_bytes(short)} short)",
        need_bytes=n_bytes,
        have_bytes=budget.vram_bytes,
        hint="try --allow-offload, a smaller --margin/--overhead, a lower --min-ctx or a smaller model family",
    )
