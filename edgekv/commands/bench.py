"""``edgekv bench``: prompt and decode speed, predicted and measured memory, per configuration."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from edgekv.commands.options import sampler_option


@click.command("bench")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--kv", default="f16,q8_0,q4_0", show_default=True, help="KV types to compare; K/V for a mixed pair.")
@click.option("--ctx", "contexts", default="4k", show_default=True, help="Contexts (comma-separated: 4k,16k).")
@click.option("--depth", "depths", default="0", show_default=True, help="KV depths for decode (llama-bench -d): 0,8k.")
@click.option("--n-prompt", default=512, show_default=True, type=click.IntRange(0), help="Prompt tokens timed.")
@click.option("--n-gen", default=128, show_default=True, type=click.IntRange(0), help="Decode steps timed.")
@click.option("--reps", default=5, show_default=True, type=click.IntRange(1), help="Repetitions (median, min, max).")
@click.option(
    "--vram",
    metavar="SIZE[,SIZE...]",
    help="VRAM cap (12G,8G: one per device of a layer split); configurations over it are reported as refused.",
)
@click.option("--tensor-split", "tensor_split", metavar="A,B[,...]", help="Each device's share (llama.cpp -ts).")
@click.option("--ngl", default=-1, show_default=True, type=int, help="Layers on the GPU (-1: all).")
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=True, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: all cores).")
@click.option(
    "--parallel",
    "parallel",
    metavar="G[,G...]",
    help="Parallel samples instead: G samples of one shared --n-prompt prompt, --n-gen tokens each, through "
    "run/eval's generation path with the real sampler (as llama-batched-bench -pps; end tokens ignored).",
)
@sampler_option
@click.option("--json", "as_json", is_flag=True, help="JSON list of records.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per record.")
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Keep the GPU decode speeds as this card's speed samples: pick --gpu refits from them.",
)
@click.pass_context
def command(
    ctx: click.Context,
    /,
    model: str,
    kv: str,
    contexts: str,
    depths: str,
    n_prompt: int,
    n_gen: int,
    reps: int,
    vram: str | None,
    tensor_split: str | None,
    ngl: int,
    flash_attn: bool,
    threads: int | None,
    as_json: bool,
    as_csv: bool,
    store: bool,
    parallel: str | None,
    sampler: str,
) -> None:
    """Benchmark prompt processing and decode speed, with predicted and measured memory.

    For each KV type x context: tokens/s of prompt processing (--n-prompt tokens) and of decoding
    (--n-gen steps after filling the KV cache to each --depth, as llama-bench -d), median of
    --reps, plus llama.cpp's buffers and the process's memory next to the memory model.

    \b
    Examples:
      edgekv bench model.gguf --kv f16,q8_0,q4_0 --ctx 4k,16k --vram 8G
      edgekv bench model.gguf --depth 0,8k --n-gen 64 --reps 3 --json > results.json
      edgekv bench model.gguf --kv q8_0/f16,q8_0 --csv
      edgekv bench model.gguf --kv q8_0 --parallel 1,4,16 --n-prompt 256 --n-gen 256
    """
    from edgekv.commands.options import verbosity
    from edgekv.errors import NothingRan, SpecError
    from edgekv.fsutil import input_file
    from edgekv.llama import bench
    from edgekv.llama import records as rec
    from edgekv.plan.memory import RunConfig
    from edgekv.requests.card import parse_vram
    from edgekv.requests.flags import kv_pairs, parse_tensor_split
    from edgekv.units import parse_list, parse_tokens

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    input_file(model)
    vram_bytes = parse_vram(vram) if vram is not None else None
    split = tuple(parse_tensor_split(tensor_split)) if tensor_split else ()
    if split and not isinstance(vram_bytes, list):
        raise click.UsageError("--tensor-split needs a --vram per device (e.g. --vram 12G,8G --tensor-split 3,2)")
    base = RunConfig(n_ctx=4096, n_gpu_layers=ngl, flash_attn=flash_attn, tensor_split=split)
    ctx_list = [parse_tokens(c) for c in parse_list(contexts)]
    if not ctx_list or min(ctx_list) < 1:
        raise SpecError(f"--ctx {contexts!r}: every context must be a positive token count", hint="e.g. --ctx 4k,16k")
    pairs = kv_pairs(kv)
    if not pairs:
        raise SpecError("--kv is empty", hint="e.g. --kv f16,q8_0,q4_0")
    configs = bench.grid(pairs, ctx_list, base=base)
    settings = rec.BenchSettings(n_prompt=n_prompt, n_gen=n_gen, reps=reps, n_threads=threads)
    depth_list = [parse_tokens(d) for d in parse_list(depths)] or [0]
    verbose = verbosity(ctx) >= 2
    if parallel is not None:
        from edgekv.commands.bench_parallel import run_parallel

        run_parallel(model, parallel, pairs, base, n_prompt, n_gen, reps, vram_bytes, vram, threads, verbose, as_json,
                     sampler=sampler)  # fmt: skip
        return
    run_args: dict[str, Any] = {
        "depths": depth_list, "settings": settings, "vram_bytes": vram_bytes, "cap_text": vram, "verbose": verbose,
    }  # fmt: skip
    from edgekv.report import common as rcommon

    show_bar = sys.stderr.isatty() and not (as_json or as_csv)
    with rcommon.step_bar("bench", len(configs) * len(depth_list), show=show_bar) as progress:
        records = bench.bench(model, configs, progress=progress, **run_args)
    rows = [r.as_dict() for r in records]
    if store:
        from edgekv.llama.speed_samples import store_speed_samples

        stored = store_speed_samples(rows)
        if stored:
            click.echo(stored, err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        click.echo(rec.csv_text(rows), nl=False)
    else:
        from edgekv.report import run as rrun

        con = rcommon.console()
        for part in rrun.bench_report(rows, model=model, summary=rec.summary(records)):
            con.print(part)
    if not any(r["status"] == "ok" for r in rows):
        reasons = sorted({str(r.get("reason")) for r in rows if r.get("reason")})
        raise NothingRan(f"none of the {len(configs)} configuration(s) ran" + (f": {reasons[0]}" if reasons else ""))
