"""``edgekv run``: run a GGUF with llama.cpp under a fixed VRAM cap, and show what it used."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

from edgekv.commands.options import exclusive, given, verbosity
from edgekv.commands.pick_options import gpu_option, n_cpu_moe_option, ram_option, tensor_split_option
from edgekv.requests.bounded import bounded, bounded_float
from edgekv.requests.options import LAYERS, TEMPERATURE, threads_option
from edgekv.requests.run import DEFAULT_CTX, DEFAULT_NGL, DEFAULT_PARALLEL

if TYPE_CHECKING:
    from edgekv.llama.generation import Generation
    from edgekv.llama.session import LoadedContext, OpenCallback, Prepared, RunOutput
    from edgekv.requests.run import RunRequest, RunSettings


@click.command("run")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--vram", metavar="SIZE[,SIZE...]", help="VRAM cap: 8G, 6GiB, 7.5G; 12G,8G caps GPU 0 and GPU 1 of a "
              "layer split. Refuses what would not fit.")  # fmt: skip
@gpu_option()
@ram_option()
@tensor_split_option()
@click.option("--kv", metavar="TYPE", help="K and V cache type: f16, q8_0, q4_0 (also bf16, q5_0, ...).")
@click.option("--type-k", "type_k", metavar="TYPE", help="K cache type (overrides --kv).")
@click.option("--type-v", "type_v", metavar="TYPE", help="V cache type (overrides --kv).")
@click.option("--ctx", "ctx_text", default=DEFAULT_CTX, show_default=True, help="Total context (4096, 16k), shared "
              "by the --parallel samples as llama.cpp's -c/-np; or auto: the largest that fits.")  # fmt: skip
@click.option("--parallel", default=DEFAULT_PARALLEL, show_default=True, type=bounded("--parallel"),
              help="Parallel samples G.")  # fmt: skip
@click.option("--ngl", default=DEFAULT_NGL, show_default=True, type=LAYERS,
              help="Layers on the GPU (-1: all).")  # fmt: skip
@n_cpu_moe_option()
@click.option("--margin", default="0", show_default=True, help="Memory kept free under --vram (as pick's --margin).")
@click.option("--prompt", help="Prompt text (the model's chat template is applied unless --raw).  [default: stdin "
              "when it is not a terminal]")  # fmt: skip
@click.option("--chat", is_flag=True, help="Chat on stdin, one message per line.")
@click.option("--raw", is_flag=True, help="Send --prompt as is, without the chat template.")
@click.option("--max-tokens", default=512, show_default=True, type=bounded("--max-tokens", lo=1),
              help="Tokens to generate per sample.")  # fmt: skip
@click.option("--greedy", is_flag=True, help="Greedy decoding instead of sampling.")
@click.option("--temperature", default=0.6, show_default=True, type=TEMPERATURE, help="Qwen3 thinking default.")
@click.option("--top-p", default=0.95, show_default=True, type=bounded_float("--top-p"))
@click.option("--top-k", default=20, show_default=True, type=bounded("--top-k"))
@click.option("--seed", default=0, show_default=True, type=bounded("--seed"))
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=None, help="Default: on (a quantized V needs it).")
@threads_option()
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Settings from edgekv pick --json output.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the samples, timings and memory.")
@click.pass_context
def command(
    ctx: click.Context, /, model: str | None, vram: str | None, gpu: str | None, tensor_split: str | None,
    kv: str | None, type_k: str | None, type_v: str | None, ctx_text: str, parallel: int, ngl: int, margin: str,
    prompt: str | None, chat: bool, raw: bool, max_tokens: int, greedy: bool, temperature: float, top_p: float,
    top_k: int, seed: int, flash_attn: bool | None, threads: int | None, plan_path: str | None, as_json: bool,
    ram: str | None, n_cpu_moe: int | None,
) -> None:  # fmt: skip
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
    from edgekv.llama import session
    from edgekv.report import common as rcommon
    from edgekv.report import run as rrun
    from edgekv.requests.run import RunRequest

    exclusive(
        ("chat", "raw", "--chat applies the chat template to every turn; --raw is for a single --prompt"),
        ("greedy", "temperature", "--greedy always takes the likeliest token; --temperature is for sampling"),
    )
    request = RunRequest(
        model=model, plan_path=plan_path, vram=vram, gpu=gpu, tensor_split=tensor_split, kv=kv, type_k=type_k,
        type_v=type_v, ctx=ctx_text if given(ctx, "ctx_text") else None,
        parallel=parallel if given(ctx, "parallel") else None, ngl=ngl if given(ctx, "ngl") else None, margin=margin,
        prompt=prompt, chat=chat, raw=raw, max_tokens=max_tokens, greedy=greedy, temperature=temperature,
        top_p=top_p, top_k=top_k, seed=seed, flash_attn=flash_attn, threads=threads, ram=ram, n_cpu_moe=n_cpu_moe,
    )  # fmt: skip
    s = request.resolve(stdin=sys.stdin)
    cfg, verbose = s.config, verbosity(ctx) >= 2
    if (note := rrun.no_offload_note(cfg, s.vram_bytes)) is not None:
        click.echo(note, err=True)
    prepared = session.prepare(s.model, cfg, vram_bytes=s.vram_bytes, auto_ctx=s.auto_ctx, margin_bytes=s.margin_bytes,
                               cap_text=s.cap_text, verbose=verbose, ram_bytes=s.ram_bytes)  # fmt: skip

    def header(loaded: LoadedContext) -> None:  # once llama.cpp made the context: the one used, not the one asked
        if not as_json:
            cap_text = s.cap_text if s.vram_bytes else None
            for line in rrun.header_lines(prepared, s.model, cfg, cap_text=cap_text, loaded=loaded):
                click.echo(line, err=True)

    out = _generate(prepared, s, request, quiet=as_json, verbose=verbose, on_open=header)
    if as_json:
        click.echo(json.dumps(rrun.run_json(prepared, out, model=s.model, vram_bytes=s.vram_bytes,
                                            max_tokens=request.max_tokens), indent=2))  # fmt: skip
        return
    con = rcommon.console(stderr=True)
    parts = rrun.run_report(prepared, out, max_tokens=request.max_tokens)
    for part in parts[len(out.generations) :] if request.chat else parts:  # --chat printed each turn's line
        con.print(part)


def _generate(
    prepared: Prepared, s: RunSettings, request: RunRequest, *, quiet: bool, verbose: bool, on_open: OpenCallback
) -> RunOutput:
    """Stream sample 1 to stdout (unless --json); print the other samples after it. --chat: a turn per stdin
    line, each followed by its speed and why it ended (on stderr)."""
    from edgekv.llama import session
    from edgekv.report import run as rrun

    if request.chat:

        def turn_end(gen: Generation) -> None:
            click.echo("")
            click.echo(rrun.turn_line(gen, max_tokens=request.max_tokens, n_ctx_seq=n_ctx_seq[0]), err=True)

        n_ctx_seq: list[int | None] = [None]

        def opened(loaded: LoadedContext) -> None:
            n_ctx_seq[0] = loaded.n_ctx_seq
            on_open(loaded)

        return session.run_chat(
            prepared, _lines(sys.stdin), max_tokens=request.max_tokens, sampling=s.sampling,
            n_threads=request.threads, verbose=verbose,
            on_token=None if quiet else (lambda seq, tok, piece: click.echo(piece, nl=False)),
            on_turn_end=None if quiet else turn_end, on_open=opened,
        )  # fmt: skip

    def stream(seq: int, _tok: int, piece: str) -> None:
        if seq == 0 and not quiet:
            click.echo(piece, nl=False)

    assert s.prompt is not None
    out = session.run_prompt(prepared, s.prompt, max_tokens=request.max_tokens, sampling=s.sampling, raw=request.raw,
                             n_threads=request.threads, verbose=verbose, on_token=stream, on_open=on_open)  # fmt: skip
    if not quiet:
        click.echo("")
        for i, seq in enumerate(out.generations[0].sequences[1:], start=2):
            click.echo(f"\n--- sample {i} ---\n{seq.text}")
    return out


def _lines(stdin: TextIO) -> Iterator[str]:
    """stdin's lines (each UTF-8, else a PromptError naming the line), with a "> " prompt on stderr when
    it is a terminal."""
    from edgekv.requests.run import chat_lines

    tty = stdin.isatty()
    lines = chat_lines(stdin)
    while True:
        if tty:
            click.echo("> ", nl=False, err=True)
        if (line := next(lines, None)) is None:
            return
        yield line
