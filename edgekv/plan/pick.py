"""``pick()``: the library entry point of ``edgekv pick``, with the only set of defaults.

Pure but for ``gguf_path`` (edgekv's own stdlib header reader): never imports llama_cpp,
huggingface_hub, gguf or numpy. Options from a hub repo come from ``edgekv.hub.remote`` and are
passed in as ``options``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from edgekv.errors import NoFeasiblePlan, SpecError, UnsupportedModel
from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
from edgekv.model.spec import ModelSpec, Task
from edgekv.plan import catalog
from edgekv.plan.catalog import options_from_catalog
from edgekv.plan.fit import context_cap
from edgekv.plan.memory import DEFAULT_MARGIN_BYTES, RunConfig, WeightLayout
from edgekv.plan.plans import (
    E1_BYTES,
    E2_BYTES,
    MAX_PARALLEL,
    SATURATION_TOKENS,
    SIMILAR,
    TOKEN_FLOOR,
    Budget,
    ModelOption,
    PickResult,
    Plan,
    Policy,
)
from edgekv.plan.policy import max_tokens_per_seq
from edgekv.plan.policy import pick as rank

if TYPE_CHECKING:
    from edgekv.plan.devices import DeviceBudget
    from edgekv.plan.speed import CardSpeed

DEFAULT_FAMILY = "qwen3"  # the family the paper measured
DEFAULT_TOP = 5


def pick(
    *,
    vram_bytes: int | Sequence[int],
    tensor_split: Sequence[float] | None = None,
    device_names: Sequence[str] | None = None,
    task: Task = Task.MATH,
    family: str | None = DEFAULT_FAMILY,
    models: Sequence[str] | None = None,
    quants: Sequence[str] | None = None,
    kv_types: Sequence[KvType] = DEFAULT_KV_TYPES,
    mixed_kv: bool = False,
    min_ctx_tokens: int = 0,
    allow_offload: bool = False,
    overhead_bytes: int | None = None,
    margin_bytes: int = DEFAULT_MARGIN_BYTES,
    accounting: str = "runtime",
    gguf_path: str | os.PathLike[str] | None = None,
    options: Sequence[ModelOption] | None = None,
    e1_bytes: int = E1_BYTES,
    e2_bytes: int = E2_BYTES,
    token_floor_tokens: int = TOKEN_FLOOR,
    saturation_tokens: int = SATURATION_TOKENS,
    max_parallel: int = MAX_PARALLEL,
    similar: float = SIMILAR,
    cap_precision: bool = True,
    flat_precision: bool = False,
    q4_kv_ok: bool = False,
    parallel_min_bytes: int = 0,
    top: int = DEFAULT_TOP,
    plans: Sequence[Plan] | None = None,
    card_speed: CardSpeed | None = None,
    max_time_s: float | None = None,
) -> PickResult:
    """Rank model x quant x KV type x context x samples for a card of ``vram_bytes`` by the scale rule.

    ``vram_bytes`` as a sequence of caps plans across several devices with llama.cpp's layer split
    (``tensor_split``: each device's share, default proportional to the caps; ``device_names``
    for messages, default "GPU 0", "GPU 1", ...): every plan then fits each device's cap.

    Options come from ``options`` if given, else ``gguf_path``, else the catalog (``family``:
    a family name or None/"all"; ``models``: catalog names; ``quants``: weight quant names).
    ``accounting="paper"`` counts weights + KV only (the paper's accounting).
    ``cap_precision`` (rule 3): below E1, weights above 8 bits count as their 8-bit size; F32 counts
    as 16-bit everywhere (``Policy.cap_precision``; False ranks by the file's bytes).
    ``plans``: this card's ``PickResult.enumerated`` from an earlier call with a superset of these
    options and the same KV/offload/parallel settings; only the ranking is redone (a card walk).
    ``card_speed`` times every plan on a card (``PickResult.speed``); ``max_time_s`` then keeps
    only plans whose predicted time to answer fits, each T shortened to what answers in time,
    and ranks them by the rule.
    ``flat_precision``, ``q4_kv_ok`` and ``parallel_min_bytes`` come from a calibrated profile
    (``edgekv calibrate``).

    Raises:
        SpecError: a bad argument or no catalog model matches.
        NoFeasiblePlan: nothing fits (or nothing answers within ``max_time_s``).
    """
    if max_time_s is not None and card_speed is None:
        raise SpecError("a time limit needs the card's speed", hint="name the card, e.g. --gpu 'RTX 4060'")
    if max_time_s is not None and max_time_s <= 0:
        raise SpecError(f"the time limit must be positive, not {max_time_s}")
    if accounting not in ("runtime", "paper"):
        raise SpecError(f"accounting must be runtime or paper, not {accounting!r}")
    if not kv_types:
        raise SpecError("no KV cache type to consider", hint="pass --kv f16,q8_0,q4_0")
    paper = accounting == "paper"
    caps = [vram_bytes] if isinstance(vram_bytes, int) else list(vram_bytes)
    if not caps:
        raise SpecError("no device memory given", hint="pass --vram 8G, or --vram 12G,8G for two devices")
    devs: tuple[DeviceBudget, ...] = ()
    if len(caps) > 1:
        from edgekv.plan.devices import check_split, default_split, devices_from_caps  # several devices only

        devs = devices_from_caps(caps, device_names)
        split = check_split(tensor_split, len(devs)) if tensor_split is not None else default_split(devs)
    elif tensor_split is not None and len(tensor_split) > 1:
        raise SpecError("--tensor-split needs a --vram per device", hint="e.g. --vram 12G,8G --tensor-split 3,2")
    else:
        split = ()
    budget = Budget(
        vram_bytes=sum(caps),
        overhead_bytes=0 if paper else overhead_bytes,
        margin_bytes=0 if paper else margin_bytes,
        include_compute=not paper,
        devices=devs,
        tensor_split=split,
    )
    policy = Policy(
        task=task, e1_bytes=e1_bytes, e2_bytes=e2_bytes, token_floor=token_floor_tokens,
        saturation_tokens=saturation_tokens, max_parallel=max_parallel, similar=similar,
        kv_types=tuple(kv_types), mixed_kv=mixed_kv, allow_offload=allow_offload, min_ctx=min_ctx_tokens,
        cap_precision=cap_precision,
        flat_precision=flat_precision, q4_kv_ok=q4_kv_ok, parallel_min_bytes=parallel_min_bytes,
    )  # fmt: skip
    if options is None:
        options = [gguf_option(gguf_path)] if gguf_path is not None else catalog_options(family, models, quants)
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


def catalog_options(
    family: str | None, models: Sequence[str] | None, quants: Sequence[str] | None
) -> list[ModelOption]:
    """The catalog's options for a family ("all"/None = every family) or named models."""
    fam = None if (models or family in (None, "all")) else family
    wanted = ",".join(models) if models else None
    chosen = catalog.select(catalog.load_catalog(), family=fam, model=wanted)
    if not chosen:
        raise SpecError(
            f"no catalog model matches family {family!r}" + (f" and models {wanted!r}" if wanted else ""),
            hint="families: qwen3, deepseek-r1-distill, all; see models/",
        )
    options = options_from_catalog(chosen, quants=quants)
    if all(m.spec.is_moe for m in chosen):
        refuse_moe(", ".join(m.name for m in chosen))
    if not options and quants:
        have = sorted({o.quant for o in options_from_catalog(chosen, quants=None)})
        raise SpecError(
            f"--quants {','.join(quants)}: no catalog file of the chosen models has "
            + ("that quant" if len(quants) == 1 else "those quants"),
            hint=f"the catalog has {', '.join(have)}" if have else "choose other --family/--model",
        )
    return options


def gguf_option(path: str | os.PathLike[str]) -> ModelOption:
    """A local GGUF as a pick option (edgekv's own header reader, no gguf/numpy)."""
    from edgekv.model.gguf_reader import read_spec

    spec = read_spec(path)
    if spec.is_moe:
        refuse_moe(os.path.basename(os.fspath(path)))
    return spec_option(spec, path=str(path))


def refuse_moe(names: str) -> NoReturn:
    """pick does not rank mixture-of-experts models until their capacity for the rule is defined (issue 24)."""
    raise UnsupportedModel(
        f"{names}: a mixture-of-experts model, which pick does not rank yet (the rule's capacity of a MoE "
        "is not defined, and its total size would overstate it)",
        hint="choose dense models (--family, --model); `edgekv inspect` shows a MoE GGUF's sizes",
    )


def spec_option(spec: ModelSpec, *, path: str | None = None) -> ModelOption:
    """A ModelOption sized from a spec's own tensors."""
    return ModelOption(
        name=os.path.splitext(os.path.basename(os.fspath(path)))[0] if path else spec.name,  # the file's stem
        quant=spec.file_type or "?", spec=spec,
        layout=WeightLayout.from_spec(spec), effective_bytes=spec.weights_bytes, path=path, n_params=spec.n_params,
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
