"""``edgekv run``: run a GGUF with llama.cpp under a fixed VRAM cap, and show what it used."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgekv.commands.card_options import gpu_option
from edgekv.commands.options import input_file, kv_types, verbosity
from edgekv.commands.run_settings import run_settings


@click.command("run")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--vram",
    metavar="SIZE[,SIZE...]",
    help="VRAM cap: 8G, 6GiB, 7.5G; 12G,8G caps GPU 0 and GPU 1 of a layer split. Refuses what would not fit.",
)
@gpu_option()
@click.option(
    "--tensor-split",
    "tensor_split",
    metavar="A,B[,...]",
    help="Each device's share of the layers (llama.cpp -ts).  [default: proportional to --vram]",
)
@click.option("--kv", metavar="TYPE", help="K and V cache type: f16, q8_0, q4_0 (also bf16, q5_0, ...).")
@click.option("--type-k", "type_k", metavar="TYPE", help="K cache type (overrides --kv).")
@click.option("--type-v", "type_v", metavar="TYPE", help="V cache type (overrides --kv).")
@click.option(
    "--ctx",
    "ctx_text",
    default="auto",
    show_default=True,
    help="Total context (4096, 16k), shared by the --parallel samples as llama.cpp's -c/-np; "
    "or auto: the largest that fits.",
)
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1, 256), help="Parallel samples G.")
@click.option("--ngl", default=-1, show_default=True, type=click.IntRange(-1), help="Layers on the GPU (-1: all).")
@click.option("--margin", default="0", show_default=True, help="Memory kept free under --vram (as pick's --margin).")
@click.option("--prompt", help="Prompt text (the model's chat template is applied unless --raw).")
@click.option("--chat", is_flag=True, help="Chat on stdin, one message per line.")
@click.option("--raw", is_flag=True, help="Send --prompt as is, without the chat template.")
@click.option(
    "--max-tokens", default=512, show_default=True, type=click.IntRange(1), help="Tokens to generate per sample."
)
@click.option("--greedy", is_flag=True, help="Greedy decoding instead of sampling.")
@click.option("--temperature", default=0.6, show_default=True, type=click.FloatRange(0), help="Qwen3 thinking default.")
@click.option("--top-p", default=0.95, show_default=True, type=click.FloatRange(0, 1))
@click.option("--top-k", default=20, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=None, help="Default: on (a quantized V needs it).")
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: all cores).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Settings from edgekv pick --json output.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the samples, timings and memory.")
@click.pass_context
def command(ctx: click.Context, /, model: str | None, **o: Any) -> None:
    """Run a GGUF under a VRAM cap with a (quantized) KV cache, and show the memory it used.

    Before loading, the memory model (with the compute buffer from a llama.cpp dry run) must fit
    --vram, else the run is refused with the shortfall. On a large GPU the cap is enforced by
    reserving the rest of the card, so llama.cpp really has only --vram.

    \b
    Examples:
      edgekv run Qwen3-4B-Q8_0.gguf --vram 8G --kv q8_0 --prompt "What is 17*23?"
      edgekv run model.gguf --vram 6G --ctx auto --parallel 4 --prompt "..." --json
      edgekv run --plan plan.json --prompt "Prove that sqrt(2) is irrational."
      edgekv run model.gguf --vram 8G --chat
    """
    from edgekv.commands import run_output
    from edgekv.llama import build, session
    from edgekv.llama.sampling import Sampling
    from edgekv.plan.memory import RunConfig
    from edgekv.units import parse_size

    s = run_settings(ctx, model, o)
    model, vram_bytes, cap_text, parallel, ngl = s.model, s.vram_bytes, s.cap_text, s.parallel, s.ngl
    if not model:
        raise click.UsageError("give MODEL.gguf or --plan plan.json")
    input_file(model)
    if o["chat"] and parallel > 1:
        raise click.UsageError("--chat runs one sample; drop --parallel")
    if o["chat"] and o["prompt"] is not None:
        raise click.UsageError("give --prompt or --chat, not both")
    prompt = o["prompt"]
    if not o["chat"] and prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give --prompt TEXT, --chat, or a prompt on stdin")
        prompt = sys.stdin.read()
    verbose = verbosity(ctx) >= 2
    tk, tv = kv_types(o["kv"], o["type_k"], o["type_v"], default=s.plan_kv)
    fa = o["flash_attn"] is not False  # on unless turned off; session.prepare checks the pair before anything loads
    if s.split and not isinstance(vram_bytes, list):
        raise click.UsageError("--tensor-split needs a --vram per device (e.g. --vram 12G,8G --tensor-split 3,2)")
    cfg = RunConfig(
        n_ctx=s.n_ctx, type_k=tk, type_v=tv, n_seq=parallel, n_gpu_layers=ngl, flash_attn=fa, tensor_split=s.split
    )
    if (ngl != 0 or vram_bytes) and not isinstance(vram_bytes, list) and not build.gpu_offload_supported():
        click.echo(
            "note: this llama-cpp-python build has no GPU offload; running on the CPU, with --vram capping what "
            f"llama.cpp allocates. For a GPU build:\n  {build.CUDA_REINSTALL}",
            err=True,
        )
    margin = parse_size(o["margin"], allow_zero=True)
    prepared = session.prepare(
        model, cfg, vram_bytes=vram_bytes, auto_ctx=s.auto_ctx, margin_bytes=margin, cap_text=cap_text, verbose=verbose
    )
    samp = Sampling(
        temperature=o["temperature"], top_p=o["top_p"], top_k=o["top_k"], seed=o["seed"], greedy=o["greedy"]
    )
    if not o["as_json"]:
        run_output.header(prepared, model, tk, tv, fa, cap_text=cap_text if vram_bytes else None)
    out = run_output.generate(prepared, prompt, o, samp, verbose=verbose)
    run_output.show(prepared, out, model=model, vram_bytes=vram_bytes, as_json=o["as_json"])
