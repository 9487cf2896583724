"""``edgekv download``: the plan's one-line summary, the dry run's file list, the --json dict, and
the ``edgekv run`` command for the downloaded file."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from edgekv.units import format_bytes

if TYPE_CHECKING:
    from edgekv.hub.download import DownloadPlan, DownloadResult


def summary(plan: DownloadPlan) -> str:
    """REPO @ COMMIT: the file (and its shard count), total size, bytes to fetch and free space."""
    names = plan.files[0].filename + (f" (+{len(plan.files) - 1} shards)" if len(plan.files) > 1 else "")
    free = f", {format_bytes(plan.free_bytes)} free" if plan.free_bytes is not None else ""
    return (
        f"{plan.repo_id} @ {(plan.commit or plan.revision)[:8]}: {names}, {format_bytes(plan.n_bytes)} "
        f"({format_bytes(plan.n_bytes_to_fetch)} to fetch{free})"
    )


def run_command(plan: DownloadPlan, vram: str | None) -> str:
    """The ``edgekv run`` command line for the downloaded file (--vram as given, else 8G)."""
    return f"edgekv run {shlex.quote(str(plan.path))} --vram {vram or '8G'}"


def dry_run_lines(plan: DownloadPlan) -> list[str]:
    """--dry-run: the summary, each file with its size (and whether it is cached), where it would go."""
    lines = [summary(plan)]
    for f, cached in zip(plan.files, plan.cached, strict=True):
        size = format_bytes(f.n_bytes) if f.n_bytes is not None else "size unknown"
        lines.append(f"  {f.filename}  {size}{'  (cached)' if cached else ''}")
    lines.append(f"Would download to: {plan.path}")
    return lines


def result_lines(plan: DownloadPlan, result: DownloadResult | None, *, vram: str | None) -> list[str]:
    """What was fetched (``result`` None: a dry run's file list), and the ``edgekv run`` command."""
    if result is None:
        lines = dry_run_lines(plan)
    else:
        lines = [f"Downloaded: {result.path}" if result.n_bytes_fetched else f"Already cached: {result.path}"]
    hint = "" if vram else "   (use your card's memory for --vram)"
    return [*lines, f"Run it:     {run_command(plan, vram)}{hint}"]


def download_dict(plan: DownloadPlan, result: DownloadResult | None, *, vram: str | None) -> dict[str, Any]:
    """--json: the files (cached or not, local paths), sizes, free space, and the run command;
    ``result`` None is a dry run."""
    return {
        "repo": plan.repo_id,
        "revision": plan.revision,
        "commit": plan.commit,
        "files": [
            {
                "filename": f.filename,
                "quant": f.quant,
                "n_bytes": f.n_bytes,
                "sha256": f.sha256,
                "cached": cached,
                "path": str(p),
            }
            for f, cached, p in zip(plan.files, plan.cached, plan.local_paths, strict=True)
        ],  # fmt: skip
        "n_bytes": plan.n_bytes,
        "n_bytes_to_fetch": plan.n_bytes_to_fetch,
        "free_bytes": plan.free_bytes,
        "from_cache": plan.from_cache,
        "dry_run": result is None,
        "path": str(plan.path),
        "run_command": run_command(plan, vram),
    }
