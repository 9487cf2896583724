"""``edgekv inspect``: a GGUF's spec, effective size, bytes by tensor type and KV cost."""

from __future__ import annotations

import json

import click


@click.command("inspect")
@click.argument("target")
@click.argument("filename", required=False)
@click.option("--remote", is_flag=True, help="TARGET is a hub repo and FILENAME a GGUF in it: read only its header.")
@click.option("--revision", help="Hub revision (branch, tag or commit) with --remote.")
@click.option("--vram", metavar="SIZE", help="Also show the largest context that fits fully offloaded.")
@click.option("--margin", default="256M", show_default=True, help="Safety margin kept free with --vram.")
@click.option("--overhead", default="auto", show_default=True, help="CUDA overhead with --vram: auto or a size.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(
    target: str, filename: str | None, remote: bool, revision: str | None, vram: str | None,
    margin: str, overhead: str, as_json: bool,
) -> None:  # fmt: skip
    """Show a GGUF's spec, effective size, bytes by tensor type and KV bytes per token.

    \b
    Examples:
      edgekv inspect model.gguf
      edgekv inspect model.gguf --vram 8G --json
      edgekv inspect bartowski/Qwen_Qwen3-8B-GGUF Qwen_Qwen3-8B-Q4_K_M.gguf --remote
    """
    from edgekv.model.gguf_reader import VocabOnly
    from edgekv.report import common as rcommon
    from edgekv.report import model as rmodel
    from edgekv.requests.inspect import InspectRequest

    request = InspectRequest(target, filename, remote=remote, revision=revision, vram=vram, margin=margin,
                             overhead=overhead)  # fmt: skip
    found = request.read()
    if isinstance(found, VocabOnly):
        vocab = rmodel.vocab_only_dict(found)
        if as_json:
            click.echo(json.dumps(vocab, indent=2))
        else:
            rcommon.console().print(rmodel.vocab_only_table(vocab))
        return
    vram_bytes, margin_bytes, overhead_bytes = request.memory()
    data = rmodel.inspect_data(found, vram_bytes, margin_bytes=margin_bytes, overhead_bytes=overhead_bytes)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        rcommon.console().print(rmodel.spec_tables(data, vram_bytes=vram_bytes))
