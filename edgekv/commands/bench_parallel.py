"""``edgekv bench --parallel``: parse the counts, run ``edgekv.llama.parallel``, show the table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from edgekv.llama.sampling import SamplerPlace


def run_parallel(
    model: str, parallel: str, pairs: list[Any], base: Any, n_prompt: int, n_gen: int, reps: int,
    vram_bytes: Any, cap_text: str | None, threads: int | None, verbose: bool, as_json: bool, *, sampler: SamplerPlace,
) -> None:  # fmt: skip
    """``--parallel``: one record per (KV pair, G); exit 1 when none ran."""
    from dataclasses import replace

    from edgekv.errors import NothingRan, SpecError
    from edgekv.llama.parallel import bench_parallel
    from edgekv.report import common as rcommon
    from edgekv.report import run as rrun
    from edgekv.units import parse_list

    try:
        gs = [int(x) for x in parse_list(parallel)]
    except ValueError:
        raise SpecError(f"--parallel {parallel!r} is not a list of counts", hint="e.g. --parallel 1,4,16") from None
    if not gs or min(gs) < 1 or n_prompt < 1 or n_gen < 1:
        raise SpecError("--parallel needs counts >= 1 and --n-prompt, --n-gen >= 1", hint="e.g. --parallel 1,4,16")
    rows = []
    for k, v in pairs:
        cfg = replace(base, type_k=k, type_v=v, flash_attn=base.flash_attn or v.quantized)
        rows += [r.as_dict() for r in bench_parallel(model, gs, base=cfg, n_prompt=n_prompt, n_gen=n_gen, reps=reps,
                                                     vram_bytes=vram_bytes, cap_text=cap_text, n_threads=threads,
                                                     verbose=verbose, sampler=sampler)]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        rcommon.console().print(rrun.parallel_table(rows))
    if not any(r["status"] == "ok" for r in rows):
        raise NothingRan(f"none of the {len(rows)} parallel configuration(s) ran: {rows[0]['reason'] if rows else ''}")
