"""``edgekv sweep``: evaluate every configuration that fits the given cards, resumably."""

from __future__ import annotations

import json

import click

from edgekv.commands.options import exclusive
from edgekv.llama.sampling import SamplerPlace
from edgekv.requests.bounded import bounded
from edgekv.requests.options import sampler_option, threads_option


@click.command("sweep")
@click.option("--vram", required=True, help="Cards to sweep, comma-separated: 4G,6G,8G.")
@click.option("--dataset", required=True, help="Problem set: aime25, aime24, math500, gsm8k, gpqa, synth or a file.")
@click.option("--limit", type=bounded("--limit"), help="Only the first N problems.")
@click.option("--family", default="qwen3", show_default=True, help="Catalog family (or all).")
@click.option("--models", help="Only these catalog models (comma-separated).")
@click.option("--gguf", "gguf_paths", help="Local GGUF files instead of the catalog (comma-separated).")
@click.option("--quants", help="Only these weight quants (comma-separated, e.g. Q8_0,Q4_K_M).")
@click.option("--kv", default="f16,q8_0,q4_0", show_default=True, help="KV cache types.")
@click.option("--budgets", default="2k,4k,8k,16k", show_default=True, help="Generation budgets (tokens).")
@click.option("--samples", default="1,4", show_default=True, help="Parallel samples G (majority voting).")
@click.option("--prompt-tokens", default="1024", show_default=True, help="Room for the prompt in each context.")
@click.option("--reserve", default="256", show_default=True, help="Room after the budget for the final answer.")
@click.option("--seed", default=0, show_default=True, type=bounded("--seed"), help="Sampling seed.")
@click.option("--slots", type=bounded("--slots"), help="Sequences decoded together (default: eval's).")
@sampler_option
@threads_option("CPU threads of llama.cpp (default: all cores).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder  [default: ./sweep-DATASET]")
@click.option("--download", is_flag=True, help="Fetch catalog files not in the hub cache.")
@click.option("--dry-run", is_flag=True, help="Show the configurations and their order; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as the manifest's JSON.")
def command(
    vram: str, dataset: str, limit: int | None, family: str, models: str | None, gguf_paths: str | None,
    quants: str | None, kv: str, budgets: str, samples: str, prompt_tokens: str, reserve: str, seed: int,
    slots: int | None, sampler: SamplerPlace, threads: int | None, out_dir: str | None, download: bool, dry_run: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Evaluate every model file x KV x budget x G that fits each card: the accuracy/memory frontier.

    Configurations are enumerated as pick enumerates them (its fit search, the whole process
    counted), deduplicated across cards, and ordered so that each model file is loaded once. Only
    the largest G that fits is run; smaller G come from its majority votes. Results go to
    OUT/results/*.jsonl and OUT/sweep.json; run the same command again to resume a killed sweep.

    \b
    Examples:
      edgekv sweep --vram 4G,6G,8G --dataset aime25 --limit 30 --dry-run
      edgekv sweep --vram 8G --dataset math500 --limit 100 --budgets 2k,8k --samples 1,4
      edgekv sweep --vram 6G --dataset aime25 --gguf a.gguf,b.gguf --kv q8_0
      edgekv frontier sweep-aime25 --png frontier.png
    """
    from edgekv.eval import sweep
    from edgekv.report import common as rcommon
    from edgekv.report import eval as reval
    from edgekv.requests.sweep import SweepRequest

    exclusive(
        ("gguf_paths", "models", "--models picks catalog models, --gguf sweeps only those files; give one"),
        ("gguf_paths", "quants", "--quants filters the catalog's files, --gguf sweeps only those files"),
    )
    request = SweepRequest(
        vram=vram, dataset=dataset, limit=limit, family=family, models=models, gguf_paths=gguf_paths, quants=quants,
        kv=kv, budgets=budgets, samples=samples, prompt_tokens=prompt_tokens, reserve=reserve, seed=seed,
        slots=slots, sampler=sampler, threads=threads, out_dir=out_dir,
    )  # fmt: skip
    plan, out = request.plan(), request.out
    if dry_run:
        sweep.check_resumable(plan, out)  # a folder of another sweep, or a sweep.json that is not one
        if as_json:
            click.echo(json.dumps(sweep.manifest_dict(plan, out), indent=1))
        else:
            done = frozenset(it.key for it in plan.items if sweep.is_done(out, it))
            con = rcommon.console()
            con.print(reval.sweep_table(plan, done=done, width=con.width))
        return
    plan = sweep.resolve_models(plan, locate=sweep.hub_locate, fetch=sweep.hub_fetch if download else None)
    con = rcommon.console(stderr=True)

    def progress(event: str, i: int, n: int, it: sweep.SweepItem) -> None:
        con.print(f"[{i}/{n}] {event:5} {it.key}")

    sweep.run_sweep(plan, out, request.backend(plan.settings), progress=progress)
    click.echo(f"Sweep done: {out}. Next: edgekv frontier {out} --png frontier.png; edgekv calibrate {out}")
