"""``edgekv convert``: a Hugging Face checkpoint to an f16/bf16 GGUF and a quant ladder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgekv.requests.options import threads_option

DEFAULT_QUANTS = "Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0"


@click.command("convert")
@click.argument("checkpoint_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quants", "quants", default=DEFAULT_QUANTS, show_default=True, help="Comma-separated quant ladder.")
@click.option("--outtype", "outtype", type=click.Choice(["f16", "bf16"]), default="f16", show_default=True,
              help="Type of the unquantized GGUF the quants are made from.")  # fmt: skip
@click.option("--outdir", "outdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: ./<name>-GGUF].")  # fmt: skip
@click.option("--name", "model_name", default=None, help="Model name for the files [default: the folder's name].")
@click.option("--imatrix", "imatrix", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Importance matrix (llama-imatrix output) for the quants.")  # fmt: skip
@threads_option("Quantization threads.")
@click.option("--force", "force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--converter", "converter", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use llama.cpp's convert_hf_to_gguf.py for the f16/bf16 step (needs torch).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def command(
    checkpoint_dir: Path, quants: str, outtype: str, outdir: Path | None, model_name: str | None,
    imatrix: Path | None, threads: int | None, force: bool, converter: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Convert a Hugging Face checkpoint (safetensors) to GGUF and quantize it.

    Writes <name>-F16.gguf, one <name>-<QUANT>.gguf per quant and manifest.json (sha256, sizes,
    tensor-type mix and KV bytes per token of each file). Only safetensors are read: .bin/.pt
    pickles are refused because unpickling runs code. A rerun reuses the files it finished.

    \b
    Examples:
      edgekv convert ./Qwen3-8B
      edgekv convert ./Qwen3-8B --quants Q4_K_M,Q8_0 --outdir ./gguf --json
      edgekv convert ./Llama-3.2-1B --outtype bf16 --imatrix imatrix.gguf --force
    """
    from rich.console import Console

    from edgekv.convert.checkpoint import convert_checkpoint
    from edgekv.errors import BadArgument, SpecError
    from edgekv.fsutil import input_file, not_a_regular_file
    from edgekv.model.quant import WeightQuant
    from edgekv.report import convert as rconvert
    from edgekv.report import progress as rprogress

    if (why := not_a_regular_file(checkpoint_dir)) not in (None, "does not exist", "is a directory, not a file"):
        raise SpecError(f"{checkpoint_dir} {why.replace('regular file', 'folder')}", hint="pass the checkpoint folder")
    for path, what in ((imatrix, "imatrix file"), (converter, "converter script")):
        if path is not None:
            input_file(str(path), what=what)
    ladder = [WeightQuant.parse(q) for q in quants.split(",") if q.strip()]
    if not ladder:
        raise BadArgument("--quants is empty: nothing to make", hint="e.g. --quants Q4_K_M,Q8_0")
    with rprogress.convert_bars(show=not as_json and sys.stderr.isatty()) as progress:
        result = convert_checkpoint(
            checkpoint_dir, quants=ladder, outtype=outtype, outdir=outdir, model_name=model_name, imatrix=imatrix,
            threads=threads, force=force, converter=converter, progress=progress,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.manifest, indent=2))
        return
    console = Console()
    console.print(rconvert.convert_table(result, width=console.width))
    console.print(f"manifest: {result.manifest_path}", soft_wrap=True)  # a path to paste: never wrapped
