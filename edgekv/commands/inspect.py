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
    from edgekv.errors import SpecError
    from edgekv.report import common as rcommon
    from edgekv.report import model as rmodel
    from edgekv.units import parse_size

    if remote:
        if not filename:
            raise SpecError("--remote needs REPO and FILENAME", hint="edgekv inspect REPO FILE.gguf --remote")
        from edgekv.hub.remote import inspect_remote

        spec, _stats = inspect_remote(target, filename, revision=revision)
    else:
        if filename:
            raise SpecError(f"unexpected second argument {filename!r}", hint="for a hub file add --remote")
        from edgekv.fsutil import input_file
        from edgekv.model.gguf_reader import VocabOnly, inspect_file

        found = inspect_file(input_file(target, what="GGUF file"))
        if isinstance(found, VocabOnly):
            vocab = rmodel.vocab_only_dict(found)
            if as_json:
                click.echo(json.dumps(vocab, indent=2))
            else:
                rcommon.console().print(rmodel.vocab_only_table(vocab))
            return
        spec = found
    vram_bytes = parse_size(vram) if vram is not None else None
    margin_bytes = parse_size(margin, allow_zero=True)
    overhead_bytes = None if overhead == "auto" else parse_size(overhead, allow_zero=True)
    data = rmodel.inspect_data(spec, vram_bytes, margin_bytes=margin_bytes, overhead_bytes=overhead_bytes)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rcommon.console().print(rmodel.spec_tables(data, vram_bytes=vram_bytes))
