"""``edgekv bench``: prompt and decode speed, predicted and measured memory, per configuration."""

from __future__ import annotations

import json
import sys

import click

from edgekv.commands.pick_options import n_cpu_moe_option, ram_bandwidth_option, ram_option
from edgekv.llama.sampling import SamplerPlace
from edgekv.requests.bounded import bounded
from edgekv.requests.options import LAYERS, sampler_option, threads_option


@click.command("bench")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--kv", default="f16,q8_0,q4_0", show_default=True, help="KV types to compare; K/V for a mixed pair.")
@click.option("--ctx", "contexts", default="4k", show_default=True, help="Contexts (comma-separated: 4k,16k).")
@click.option("--depth", "depths", default="0", show_default=True, help="KV depths for decode (llama-bench -d): 0,8k.")
@click.option("--n-prompt", default=512, show_default=True, type=bounded("--n-prompt"), help="Prompt tokens timed.")
@click.option("--n-gen", default=128, show_default=True, type=bounded("--n-gen"), help="Decode steps timed.")
@click.option("--reps", default=5, show_default=True, type=bounded("--reps"), help="Repetitions (median, min, max).")
@click.option("--vram", metavar="SIZE[,SIZE...]", help="VRAM cap (12G,8G: one per device of a layer split); "
              "configurations over it are reported as refused.")  # fmt: skip
@click.option("--tensor-split", "tensor_split", metavar="A,B[,...]", help="Each device's share (llama.cpp -ts).")
@ram_option()
@n_cpu_moe_option()
@click.option("--ngl", default=-1, show_default=True, type=LAYERS, help="Layers on the GPU (-1: all).")
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=True, show_default=True)
@threads_option()
@click.option("--parallel", "parallel", metavar="G[,G...]", help="Parallel samples instead: G samples of one shared "
              "--n-prompt prompt, --n-gen tokens each, through run/eval's generation path with the real sampler (as "
              "llama-batched-bench -pps; end tokens ignored).")  # fmt: skip
@sampler_option
@click.option("--json", "as_json", is_flag=True, help="JSON list of records.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per record.")
@click.option("--store/--no-store", default=True, show_default=True,
              help="Keep the GPU decode speeds as this card's speed samples: pick --gpu refits from them.")  # fmt: skip
@ram_bandwidth_option()
@click.pass_context
def command(
    ctx: click.Context, /, model: str, kv: str, contexts: str, depths: str, n_prompt: int, n_gen: int, reps: int,
    vram: str | None, tensor_split: str | None, ngl: int, flash_attn: bool, threads: int | None, as_json: bool,
    as_csv: bool, store: bool, parallel: str | None, sampler: SamplerPlace, ram_bandwidth: str | None,
    ram: str | None, n_cpu_moe: int | None,
) -> None:  # fmt: skip
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
    from edgekv.commands.options import exclusive, verbosity
    from edgekv.errors import NothingRan
    from edgekv.llama import bench
    from edgekv.llama import records as rec
    from edgekv.report import common as rcommon
    from edgekv.report import run as rrun
    from edgekv.requests.bench import BenchRequest

    exclusive(
        ("as_json", "as_csv", "give one output format"),
        ("parallel", "depths", "--parallel times G samples of one prompt from an empty cache; --depth is for the "
         "per-configuration runs"),
        ("parallel", "as_csv", "--parallel prints its table or --json; --csv is for the per-configuration runs"),
    )  # fmt: skip
    from edgekv.units import parse_bandwidth

    ram_bw = parse_bandwidth(ram_bandwidth) if ram_bandwidth is not None else None  # refused before any load
    request = BenchRequest(model=model, kv=kv, contexts=contexts, depths=depths, n_prompt=n_prompt, n_gen=n_gen,
                           reps=reps, vram=vram, tensor_split=tensor_split, ngl=ngl, flash_attn=flash_attn,
                           threads=threads, parallel=parallel, ram=ram, n_cpu_moe=n_cpu_moe or 0)  # fmt: skip
    plan = request.plan()
    verbose = verbosity(ctx) >= 2
    if plan.counts is not None:
        from edgekv.llama.parallel import bench_parallel

        rows = [r.as_dict() for base in plan.pair_bases() for r in bench_parallel(
            model, plan.counts, base=base, n_prompt=n_prompt, n_gen=n_gen, reps=reps, vram_bytes=plan.vram_bytes,
            cap_text=vram, n_threads=threads, verbose=verbose, sampler=sampler, ram_bytes=plan.ram_bytes)]  # fmt: skip
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            rcommon.console().print(rrun.parallel_table(rows))
        if not any(r["status"] == "ok" for r in rows):
            raise NothingRan(
                f"none of the {len(rows)} parallel configuration(s) ran: {rows[0]['reason'] if rows else ''}"
            )
        return
    show_bar = sys.stderr.isatty() and not (as_json or as_csv)
    with rcommon.step_bar("bench", len(plan.configs) * len(plan.depths), show=show_bar) as progress:
        records = bench.bench(model, plan.configs, progress=progress, depths=plan.depths, settings=plan.settings,
                              vram_bytes=plan.vram_bytes, cap_text=vram, verbose=verbose,
                              ram_bytes=plan.ram_bytes)  # fmt: skip
    rows = [r.as_dict() for r in records]
    if store:
        from edgekv.llama.speed_samples import store_speed_samples

        stored = store_speed_samples(rows, ram_bandwidth_bytes_per_s=ram_bw)
        if stored:
            click.echo(stored, err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        click.echo(rec.csv_text(rows), nl=False)
    else:
        con = rcommon.console()
        for part in rrun.bench_report(rows, model=model, summary=rec.summary(records), width=con.width):
            con.print(part)
    if not any(r["status"] == "ok" for r in rows):
        reasons = sorted({str(r.get("reason")) for r in rows if r.get("reason")})
        raise NothingRan(
            f"none of the {len(plan.configs)} configuration(s) ran" + (f": {reasons[0]}" if reasons else "")
        )
