"""``edgekv convert``: a Hugging Face checkpoint to an f16/bf16 GGUF and a quant ladder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

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
@click.option("--threads", "threads", type=click.IntRange(min=1), default=None, help="Quantization threads.")
@click.option("--force", "force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--converter", "converter", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use llama.cpp's convert_hf_to_gguf.py for the f16/bf16 step (needs torch).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def command(
    checkpoint_dir: Path,
    quants: str,
    outtype: str,
    outdir: Path | None,
    model_name: str | None,
    imatrix: Path | None,
    threads: int | None,
    force: bool,
    converter: Path | None,
    as_json: bool,
) -> None:
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
    from edgekv.convert.checkpoint import convert_checkpoint
    from edgekv.errors import SpecError
    from edgekv.fsutil import input_file, not_a_regular_file
    from edgekv.model.quant import WeightQuant

    if (why := not_a_regular_file(checkpoint_dir)) not in (None, "does not exist", "is a directory, not a file"):
        raise SpecError(f"{checkpoint_dir} {why.replace('regular file', 'folder')}", hint="pass the checkpoint folder")
    for path, what in ((imatrix, "imatrix file"), (converter, "converter script")):
        if path is not None:
            input_file(str(path), what=what)
    ladder = [WeightQuant.parse(q) for q in quants.split(",") if q.strip()]
    kwargs: dict[str, Any] = dict(
        quants=ladder, outtype=outtype, outdir=outdir, model_name=model_name, imatrix=imatrix,
        threads=threads, force=force, converter=converter,
    )  # fmt: skip
    if as_json or not sys.stderr.isatty():
        result = convert_checkpoint(checkpoint_dir, **kwargs)
    else:
        result = _with_progress_bar(checkpoint_dir, kwargs)
    if as_json:
        click.echo(json.dumps(result.manifest, indent=2))
        return
    _print_table(result)


def _with_progress_bar(checkpoint_dir: Path, kwargs: dict[str, Any]) -> Any:
    """Run the conversion with a rich progress bar per file on stderr (a human on a TTY)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekv.convert.checkpoint import convert_checkpoint
    from edgekv.convert.tensors import ConvertProgress

    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    ) as bar:  # fmt: skip

        def on_progress(p: ConvertProgress) -> None:
            if p.file_name not in bars:
                label = f"[{p.file_index + 1}/{p.n_files}] {p.stage} {p.file_name}"
                bars[p.file_name] = bar.add_task(label, total=p.total_bytes)
            bar.update(bars[p.file_name], completed=p.done_bytes, total=p.total_bytes)

        return convert_checkpoint(checkpoint_dir, progress=on_progress, **kwargs)


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from edgekv.units import format_bytes

    table = Table(title=f"{result.model_name} ({result.arch}) -> {result.outdir}")
    for col in ("file", "size", "effective size", "KV B/token f16", "q8_0", "q4_0", "note"):
        table.add_column(col, justify="left" if col in ("file", "note") else "right", no_wrap=col == "file")
    for f in result.files:
        kv = f.kv_bytes_per_token
        table.add_row(
            f.name, format_bytes(f.file_bytes), format_bytes(f.weights_bytes),
            str(kv["f16"]), str(kv["q8_0"]), str(kv["q4_0"]), "reused" if f.reused else "",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"manifest: {result.manifest_path}")
