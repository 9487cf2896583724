"""``edgekv download``: fetch a GGUF (every shard) into huggingface_hub's cache, or pick's top plan."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from edgekv.commands.pick_options import pick_options

if TYPE_CHECKING:
    from edgekv.hub.download import DownloadPlan, DownloadResult


@click.command("download")
@click.argument("repo_id", metavar="[REPO]", required=False)
@click.option(
    "--quant", "quant", metavar="QUANT", help="Weight quant to fetch as llama.cpp names it: Q4_K_M, Q8_0, ..."
)
@click.option("--file", "filename", metavar="NAME", help="Exact file in the repo (any shard of a split GGUF).")
@click.option("--revision", metavar="REV", help="Branch, tag or commit hash (default: main).")
@click.option("--dry-run", is_flag=True, help="Show what would be fetched and its size; download nothing.")
@click.option(
    "--endpoint", envvar="HF_ENDPOINT", metavar="URL", help="Hub URL (default: $HF_ENDPOINT, else huggingface.co)."
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), help="Cache folder (default: $HF_HUB_CACHE or $HF_HOME/hub)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pick_options
def command(
    repo_id: str | None, quant: str | None, filename: str | None, revision: str | None, dry_run: bool,
    endpoint: str | None, cache_dir: str | None, as_json: bool, vram: str | None, gpu: str | None,
    max_time: str | None, tensor_split: str | None, task: str, family: str, model: str | None, quants: str | None,
    kv: str | None, mixed_kv: bool, min_ctx: str, allow_offload: bool, overhead: str, margin: str | None,
    accounting: str, gguf_path: str | None, repo: str | None, e1: str | None, e2: str | None,
    token_floor: str | None, saturation: str | None, max_parallel: int | None, similar: float | None,
    cap_precision: bool, profile: str | None,
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
    from edgekv.errors import SpecError
    from edgekv.hub import download as hub
    from edgekv.hub import listing as hub_listing
    from edgekv.hub import names as hub_names

    if vram or gpu:
        if quant or filename:
            raise SpecError("--vram picks the file itself", hint="drop --quant/--file, or drop --vram")
        from edgekv.requests.pick import PickFlags, top_plan_file

        flags = PickFlags(
            vram=vram, gpu=gpu, max_time=max_time, tensor_split=tensor_split, task=task, family=family, model=model,
            quants=quants, kv=kv, mixed_kv=mixed_kv, min_ctx=min_ctx, allow_offload=allow_offload,
            overhead=overhead, margin=margin, accounting=accounting, gguf_path=gguf_path,
            repo=repo_id if repo_id and not repo else repo, e1=e1, e2=e2, token_floor=token_floor,
            saturation=saturation, max_parallel=max_parallel, similar=similar, cap_precision=cap_precision,
            profile=profile,
        )  # fmt: skip
        repo_id, filename = top_plan_file(flags, endpoint=endpoint)
    elif not repo_id:
        raise SpecError(
            "say what to download", hint="edgekv download REPO --quant Q4_K_M, or edgekv download --vram 8G"
        )
    elif not quant and not filename:
        listing = hub_listing.list_gguf_files(repo_id, endpoint=endpoint, revision=revision, cache_dir=cache_dir)
        have = ", ".join(hub_names.available_quants(listing.files)) or "no quant-named files"
        raise SpecError(f"say which file of {repo_id} to download", hint=f"add --quant (it has: {have}) or --file NAME")
    plan = hub.plan_download(
        repo_id, quant=quant, filename=filename, endpoint=endpoint, revision=revision, cache_dir=cache_dir
    )
    if dry_run:
        _show(plan, None, vram=vram, as_json=as_json)
        return
    if not as_json:
        from edgekv.report import download as rdownload

        click.echo(rdownload.summary(plan))
    result = _fetch_with_bar(plan, endpoint=endpoint, show=not as_json and sys.stderr.isatty())
    _show(plan, result, vram=vram, as_json=as_json)


def _fetch_with_bar(plan: DownloadPlan, *, endpoint: str | None, show: bool) -> DownloadResult:
    """hub.fetch, with a rich progress bar on stderr for a human on a TTY."""
    from edgekv.hub import download as hub

    if not show or not plan.n_bytes_to_fetch:
        return hub.fetch(plan, endpoint=endpoint)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from edgekv.report import common as rcommon

    columns = (BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=rcommon.console(stderr=True), transient=True) as bar:
        task = bar.add_task("download", total=plan.n_bytes_to_fetch)
        return hub.fetch(plan, endpoint=endpoint, progress=lambda done, total: bar.update(task, completed=done))


def _show(plan: DownloadPlan, result: DownloadResult | None, *, vram: str | None, as_json: bool) -> None:
    from edgekv.report import download as rdownload

    if as_json:
        click.echo(json.dumps(rdownload.download_dict(plan, result, vram=vram), indent=2))
        return
    if result is None:
        for line in rdownload.dry_run_lines(plan):
            click.echo(line)
    else:
        click.echo(f"Downloaded: {result.path}" if result.n_bytes_fetched else f"Already cached: {result.path}")
    hint = "" if vram else "   (use your card's memory for --vram)"
    click.echo(f"Run it:     {rdownload.run_command(plan, vram)}{hint}")
