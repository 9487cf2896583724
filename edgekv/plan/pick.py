"""``pick()``: the library entry point of ``edgekv pick``: a :class:`PickRequest` and the options to rank.

Pure (stdlib only, no file read). The options come from the catalog
(``edgekv.store.catalog.catalog_options``), a local GGUF (``edgekv.store.catalog.gguf_option``) or a
hub repo (``edgekv.hub.remote.options_from_repo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgekv.errors import NoFeasiblePlan, SpecError
from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
from edgekv.model.spec import ModelSpec
from edgekv.plan.capacity import CAPACITY_MODES
from edgekv.plan.fit import context_cap
from edgekv.plan.memory import DEFAULT_MARGIN_BYTES, RunConfig, WeightLayout
from edgekv.plan.plans import Budget, ModelOption, PickResult, Plan
from edgekv.plan.policy import max_tokens_per_seq
from edgekv.plan.policy import pick as rank
from edgekv.plan.requests import PickRequest

if TYPE_CHECKING:
    from edgekv.plan.devices import DeviceBudget
    from edgekv.plan.speed import CardSpeed


def pick(
    request: PickRequest,
    options: Sequence[ModelOption],
    *,
    card_speed: CardSpeed | None = None,
    plans: Sequence[Plan] | None = None,
) -> PickResult:
    """Rank ``options`` (model x quant) x KV type x context x samples for the request's card by the scale rule.

    Every plan fits each device's cap. ``plans``: this card's ``PickResult.enumerated`` from an
    earlier call with a superset of these options and the same KV/offload/parallel settings; only
    the ranking is redone (a card walk). ``card_speed`` times every plan on a card
    (``PickResult.speed``); ``request.max_time_s`` then keeps only plans whose predicted time to
    answer fits, each T shortened to what answers in time, and ranks them by the rule.

    Raises:
        SpecError: a bad request (no card memory, no KV type, a split without a cap per device).
        NoFeasiblePlan: nothing fits (or nothing answers within ``max_time_s``).
    """
    max_time_s, top = request.max_time_s, request.top
    budget = check(request, card_speed=card_speed)
    policy = request.policy()
    if card_speed is None:
        return rank(options, budget, policy, top=top, plans=plans)
    from edgekv.plan.timing import format_duration, timed, token_cap  # only with a card

    if max_time_s is None:
        return timed(rank(options, budget, policy, top=top, plans=plans), card_speed)
    try:
        result = rank(options, budget, policy, top=top, token_cap=token_cap(card_speed, max_time_s))
    except NoFeasiblePlan as e:
        rank(options, budget, policy, top=1)  # re-raises when memory alone is the reason
        raise NoFeasiblePlan(
            f"nothing answers within {format_duration(max_time_s)} on {card_speed.card.name} "
            f"(a {card_speed.prompt_tokens}-token prompt and 256 answer tokens)",
            need_bytes=e.need_bytes, have_bytes=e.have_bytes, hint="raise --max-time",
        ) from None  # fmt: skip
    return timed(result, card_speed, max_time_s=max_time_s)


def check(request: PickRequest, *, card_speed: CardSpeed | None = None) -> Budget:
    """The request checked, and the card's budget: the caps (one per device), what the accounting
    counts, the layer split.

    Raises:
        SpecError: a time limit without the card's speed, no KV type, no cap, a bad split.
    """
    max_time_s = request.max_time_s
    if max_time_s is not None and card_speed is None:
        raise SpecError("a time limit needs the card's speed", hint="name the card, e.g. --gpu 'RTX 4060'")
    if max_time_s is not None and max_time_s <= 0:
        raise SpecError(f"the time limit must be positive, not {max_time_s}")
    if request.ram_bytes is not None and request.ram_bytes < 0:
        raise SpecError(f"system RAM cannot be negative ({request.ram_bytes} bytes)", hint="e.g. --ram 32G, or 0")
    if request.ram_bytes == 0 and request.allow_offload:
        raise SpecError("--ram 0 keeps every layer on the GPU, which --allow-offload contradicts",
                        hint="drop one of them, or give the RAM to use, e.g. --ram 16G")  # fmt: skip
    if request.capacity not in CAPACITY_MODES:
        raise SpecError(f"capacity must be {' or '.join(CAPACITY_MODES)}, not {request.capacity!r}")
    if request.accounting not in ("runtime", "paper"):
        raise SpecError(f"accounting must be runtime or paper, not {request.accounting!r}")
    if not request.kv_types:
        raise SpecError("no KV cache type to consider", hint="pass --kv f16,q8_0,q4_0")
    paper = request.accounting == "paper"
    caps = request.caps
    if not caps:
        raise SpecError("no device memory given", hint="pass --vram 8G, or --vram 12G,8G for two devices")
    devs: tuple[DeviceBudget, ...] = ()
    tensor_split = request.tensor_split
    if len(caps) > 1:
        from edgekv.plan.devices import check_split, default_split, devices_from_caps  # several devices only

        devs = devices_from_caps(caps, request.device_names)
        split = check_split(tensor_split, len(devs)) if tensor_split is not None else default_split(devs)
    elif tensor_split is not None and len(tensor_split) > 1:
        raise SpecError("--tensor-split needs a --vram per device", hint="e.g. --vram 12G,8G --tensor-split 3,2")
    else:
        split = ()
    return Budget(
        vram_bytes=sum(caps),
        overhead_bytes=0 if paper else request.overhead_bytes,
        margin_bytes=0 if paper else request.margin_bytes,
        include_compute=not paper,
        devices=devs,
        tensor_split=split,
        ram_bytes=request.ram_bytes,
    )


def spec_option(spec: ModelSpec, *, name: str | None = None, path: str | None = None) -> ModelOption:
    """A ModelOption sized from a spec's own tensors, called ``name`` (default: the spec's name)."""
    from edgekv.model.tensor_groups import tensor_groups

    groups = {g.value: n for g, n in tensor_groups(spec).items()} if spec.tensors else {}
    return ModelOption(
        name=name or spec.name, quant=spec.file_type or "?", spec=spec,
        layout=WeightLayout.from_spec(spec), effective_bytes=spec.weights_bytes, path=path, n_params=spec.n_params,
        group_bytes=groups, dominant_type=next(iter(spec.tensor_type_bytes()), "") if spec.tensors else "",
    )  # fmt: skip


def largest_context_by_kv(
    spec: ModelSpec, *, vram_bytes: int, margin_bytes: int = DEFAULT_MARGIN_BYTES, overhead_bytes: int | None = None
) -> dict[KvType, int]:
    """Per KV type, the largest T of one sample fully offloaded (``edgekv inspect --vram``)."""
    opt = spec_option(spec)
    budget = Budget(vram_bytes, overhead_bytes=overhead_bytes, margin_bytes=margin_bytes)
    out: dict[KvType, int] = {}
    for k in DEFAULT_KV_TYPES:
        t, _fp = max_tokens_per_seq(opt, RunConfig(n_ctx=256, type_k=k, type_v=k), budget, cap=context_cap(spec))
        out[k] = t
    return out
