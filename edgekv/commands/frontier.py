"""``edgekv frontier``: accuracy vs memory of a sweep, in the paper's accounting and in edgekv's."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edgekv.eval.frontier import Frontier


@click.command("frontier")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--png", type=click.Path(dir_okay=False), callback=lambda _c, _p, v: _png_name(v),
              help="Also draw the frontier into this PNG (needs matplotlib).")  # fmt: skip
@click.option("--all", "all_points", is_flag=True, help="List every point, not only the frontier and pick's plans.")
@click.option("--e1", callback=lambda _c, _p, v: _size(v),
              help="Where to mark E1 on the plot  [default: 4.19G, the paper's]")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Every point as JSON.")
def command(results: tuple[str, ...], png: str | None, all_points: bool, e1: int | None, as_json: bool) -> None:
    """Show accuracy vs total memory of eval results: the Pareto frontier in both accountings.

    RESULTS are eval JSONL files or sweep folders (a sweep's manifest also marks pick's plan for each
    card). "paper" counts weights + KV, "edgekv" the whole process. A G-sample run also gives the
    points of fewer samples (maj@k, marked).

    \b
    Examples:
      edgekv frontier sweep-aime25
      edgekv frontier sweep-aime25 --png frontier.png
      edgekv frontier a.jsonl b.jsonl --all --json
    """
    from edgekv.eval.sweep import load_frontier
    from edgekv.report import common as rcommon
    from edgekv.report import eval as reval

    f = load_frontier(results)
    if as_json:
        click.echo(json.dumps(reval.frontier_dict(f), indent=1))
    else:
        con = rcommon.console()
        con.print(reval.frontier_table(f, all_points=all_points, width=con.width))
    if png:
        _plot(f, png, e1)


def _png_name(value: str | None) -> str | None:
    """--png must name a .png file: matplotlib picks the format from the name (out.txt failed after the table)."""
    if value is not None and not value.lower().endswith(".png"):
        raise click.BadParameter(f"{value!r} is not a .png file name (e.g. --png frontier.png)")
    return value


def _size(value: str | None) -> int | None:
    """--e1 read as the flags are (a bad size is refused even without --png)."""
    from edgekv.units import parse_size

    return parse_size(value) if value is not None else None


def _plot(f: Frontier, png: str, e1: int | None) -> None:
    from edgekv.eval.plot import plot_frontier
    from edgekv.plan.plans import E1_BYTES

    path = plot_frontier(f, png, e1_bytes=e1 or E1_BYTES)
    click.echo(f"Frontier drawn: {path}", err=True)
