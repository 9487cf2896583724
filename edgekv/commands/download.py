"""``edgekv download``: fetch a GGUF (every shard) into huggingface_hub's cache, or pick's top plan."""

from __future__ import annotations

import json
import sys

import click

from edgekv.commands.options import exclusive
from edgekv.commands.pick_options import SOURCE_PAIRS, pick_options


@click.command("download")
@click.argument("repo_id", metavar="[REPO]", required=False)
@click.option("--quant", "quant", metavar="QUANT",
              help="Weight quant to fetch as llama.cpp names it: Q4_K_M, Q8_0, ...")  # fmt: skip
@click.option("--file", "filename", metavar="NAME", help="Exact file in the repo (any shard of a split GGUF).")
@click.option("--revision", metavar="REV", help="Branch, tag or commit hash (default: main).")
@click.option("--dry-run", is_flag=True, help="Show what would be fetched and its size; download nothing.")
@click.option("--endpoint", envvar="HF_ENDPOINT", metavar="URL",
              help="Hub URL (default: $HF_ENDPOINT, else huggingface.co).")  # fmt: skip
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Cache folder (default: $HF_HUB_CACHE or $HF_HOME/hub).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pick_options
def command(
    repo_id: str | None, quant: str | None, filename: str | None, revision: str | None, dry_run: bool,
    endpoint: str | None, cache_dir: str | None, as_json: bool, vram: str | None, gpu: str | None,
    max_time: str | None, tensor_split: str | None, task: str, family: str, model: str | None, quants: str | None,
    kv: str | None, mixed_kv: bool, min_ctx: str, allow_offload: bool, overhead: str, margin: str | None,
    accounting: str, gguf_path: str | None, repo: str | None, e1: str | None, e2: str | None,
    token_floor: str | None, saturation: str | None, max_parallel: int | None, similar: float | None,
    cap_precision: bool, capacity: str, profile: str | None, ram: str | None,
    ram_bandwidth: str | None = None,
) -> None:  # fmt: skip
    """Download a GGUF from the Hugging Face hub, or the file of pick's top plan for a card.

    Files go to huggingface_hub's cache (HF_HOME), gated repos need HF_TOKEN, HF_HUB_OFFLINE=1
    uses the cache only. A split GGUF is fetched whole. Free disk space is checked first and each
    new file's sha256 is checked against the hub's. With --vram (or --gpu auto) the file is pick's
    top plan for the card (pick's options apply; a REPO then ranks that repo's files).

    \b
    Examples:
      edgekv download bartowski/Qwen_Qwen3-8B-GGUF --quant Q4_K_M
      edgekv download bartowski/Qwen_Qwen3-8B-GGUF --quant Q8_0 --dry-run --json
      edgekv download --vram 8G
      edgekv download --vram 8G --task code --family qwen3
    """
    from edgekv.hub import download as hub
    from edgekv.report import download as rdownload
    from edgekv.report import progress as rprogress
    from edgekv.requests.download import download_target
    from edgekv.requests.pick import PickFlags

    exclusive(
        *SOURCE_PAIRS,
        ("repo_id", "repo", "both name the repo; give it once"),
        ("repo_id", "gguf_path", "--gguf ranks a local file, REPO a hub repo's files; give one"),
        ("quant", "filename", "--file names the file exactly, --quant picks it by quant; give one"),
    )
    flags = PickFlags(
        vram=vram, gpu=gpu, max_time=max_time, tensor_split=tensor_split, task=task, family=family, model=model,
        quants=quants, kv=kv, mixed_kv=mixed_kv, min_ctx=min_ctx, allow_offload=allow_offload, overhead=overhead,
        margin=margin, accounting=accounting, gguf_path=gguf_path, repo=repo_id if repo_id and not repo else repo,
        e1=e1, e2=e2, token_floor=token_floor, saturation=saturation, max_parallel=max_parallel, similar=similar,
        cap_precision=cap_precision, capacity=capacity, profile=profile, ram=ram,
        ram_bandwidth=ram_bandwidth,
    )  # fmt: skip
    repo_id, filename = download_target(repo_id, quant=quant, filename=filename, pick=flags, endpoint=endpoint,
                                        revision=revision, cache_dir=cache_dir)  # fmt: skip
    plan = hub.plan_download(
        repo_id, quant=quant, filename=filename, endpoint=endpoint, revision=revision, cache_dir=cache_dir
    )
    result = None
    if not dry_run:
        if not as_json:
            click.echo(rdownload.summary(plan))
        with rprogress.download_bar(plan.n_bytes_to_fetch, show=not as_json and sys.stderr.isatty()) as progress:
            result = hub.fetch(plan, endpoint=endpoint, progress=progress)
    if as_json:
        click.echo(json.dumps(rdownload.download_dict(plan, result, vram=vram), indent=2))
        return
    for line in rdownload.result_lines(plan, result, vram=vram):
        click.echo(line)
