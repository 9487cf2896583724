"""``edgekv catalog``: add hub repos to the catalog pick ranks, list it, remove added entries."""

from __future__ import annotations

import json

import click


@click.group("catalog")
def command() -> None:
    """The models pick ranks: the built-in catalog (models/) and the ones you add from the hub.

    Added entries live in edgekv's user folder (catalog/ under $EDGEKV_HOME, else
    $XDG_CACHE_HOME/edgekv or ~/.cache/edgekv; EDGEKV_CATALOG overrides the folder) and are read
    offline by pick, every time. A file there that is not a valid entry is left out with one
    warning line; nothing in it is ever executed.

    \b
    Examples:
      edgekv catalog add bartowski/Qwen_Qwen3-8B-GGUF --quants Q4_K_M,Q8_0
      edgekv catalog list
      edgekv catalog remove Qwen_Qwen3-8B
    """


@command.command("add")
@click.argument("repos", nargs=-1, metavar="REPO [REPO...]")
@click.option("--quants", metavar="LIST", help="Only these quants (comma-separated), e.g. Q4_K_M,Q8_0; default: all.")
@click.option("--family", metavar="NAME", help="Family for pick --family (default: the GGUF's architecture).")
@click.option("--name", metavar="NAME", help="Entry name (one repo of one model; default: from its file names).")
@click.option("--revision", metavar="REV", help="Branch, tag or commit hash (default: main).")
@click.option("--force", is_flag=True, help="Replace an added entry of the same name.")
@click.option("--endpoint", envvar="HF_ENDPOINT", metavar="URL",
              help="Hub URL (default: $HF_ENDPOINT, else huggingface.co).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def add(
    repos: tuple[str, ...], quants: str | None, family: str | None, name: str | None, revision: str | None,
    force: bool, endpoint: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Add the models of hub GGUF repos to the catalog, sized from their headers alone.

    Reads each file's header with HTTP range requests (as pick --repo does; a few MB per quant),
    one commit per repo, and writes one entry per model: its architecture, layers, heads and
    sliding-window layers as llama.cpp reads them, and each quant's exact weight bytes. Every repo
    is read before anything is written. An existing entry is replaced only with --force.

    \b
    Examples:
      edgekv catalog add bartowski/Qwen_Qwen3-8B-GGUF
      edgekv catalog add unsloth/SmolLM3-3B-GGUF --quants Q4_K_M,Q8_0 --family smollm3
    """
    from edgekv.report import catalog as rcatalog
    from edgekv.requests.catalog import CatalogAddRequest

    added = CatalogAddRequest(
        repos, quants=quants, family=family, name=name, revision=revision, force=force, endpoint=endpoint
    ).run()
    if as_json:
        click.echo(json.dumps(rcatalog.added_dict(added), indent=2))
        return
    for line in rcatalog.added_lines(added):
        click.echo(line)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """Show every model pick considers and where its entry comes from (built-in or a user file).

    A mixture-of-experts model pick does not rank yet is marked "sized, not ranked". The
    Qwen3-equivalent size is read from the entry's published scores (pick --capacity published).
    """
    from edgekv.report import catalog as rcatalog
    from edgekv.report import common as rcommon
    from edgekv.requests.catalog import catalog_rows

    rows, problems = catalog_rows()
    for line in rcatalog.problem_lines(problems):
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps({"models": rows, "left_out": problems}, indent=2))
        return
    rcommon.console().print(rcatalog.list_table(rows))


@command.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove an added entry by name (catalog list shows the names); built-in ones stay."""
    from edgekv.requests.catalog import CatalogRemoveRequest

    path = CatalogRemoveRequest(name).run()
    click.echo(f"removed {name}: {path}")
