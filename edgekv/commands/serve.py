"""``edgekv serve``: the model (or a pick's plan) as an OpenAI-compatible server on edgekv's engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from edgekv.commands.options import given, verbosity
from edgekv.commands.pick_options import gpu_option, tensor_split_option
from edgekv.requests.bounded import bounded, bounded_float
from edgekv.requests.options import LAYERS, TEMPERATURE, sampler_option, threads_option
from edgekv.requests.run import DEFAULT_NGL
from edgekv.requests.serve import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    DEFAULT_SLOTS,
)

if TYPE_CHECKING:
    from edgekv.llama.sampling import SamplerPlace


@click.command("serve")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Settings from edgekv pick --json output.")
@click.option("--vram", metavar="SIZE[,SIZE...]", help="VRAM cap: 8G, 6GiB; refuses what would not fit.")
@gpu_option()
@tensor_split_option()
@click.option("--kv", metavar="TYPE", help="K and V cache type: f16, q8_0, q4_0 (also bf16, q5_0, ...).")
@click.option("--type-k", "type_k", metavar="TYPE", help="K cache type (overrides --kv).")
@click.option("--type-v", "type_v", metavar="TYPE", help="V cache type (overrides --kv).")
@click.option("--ctx", "ctx_text", default="auto", show_default=True, help="Total context shared by the slots "
              "(llama-server's -c with -np): 4096, 16k, or auto: the largest that fits.")  # fmt: skip
@click.option("--parallel", default=DEFAULT_SLOTS, show_default=True, type=bounded("--parallel"),
              help="Slots: sequences decoded together (llama-server's -np); the plan's without this flag.")  # fmt: skip
@click.option("--ngl", default=DEFAULT_NGL, show_default=True, type=LAYERS, help="Layers on the GPU (-1: all).")
@click.option("--margin", default="0", show_default=True, help="Memory kept free under --vram (as pick's --margin).")
@click.option("--greedy", is_flag=True, help="Greedy decoding for every request.")
@click.option("--temperature", default=0.6, show_default=True, type=TEMPERATURE,
              help="Default temperature (a request may set its own).")  # fmt: skip
@click.option("--top-p", default=0.95, show_default=True, type=bounded_float("--top-p"))
@click.option("--top-k", default=20, show_default=True, type=bounded("--top-k"),
              help="Default top-k; a request's own top_k may be 1..this on the host sampler.")  # fmt: skip
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=None, help="Default: on (a quantized V needs it).")
@threads_option()
@sampler_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=bounded("--port"),
              help="Port (0: any free one; the address is printed).")  # fmt: skip
@click.option("--api-key", envvar="EDGEKV_API_KEY", help="Require 'Authorization: Bearer KEY' (env EDGEKV_API_KEY).")
@click.option("--name", help="The model's id in /v1/models and responses (default: the file's name).")
@click.option("--max-body", default=DEFAULT_MAX_BODY, show_default=True, help="Largest request body (413 past it).")
@click.option(
    "--max-prompt-tokens", type=bounded("--max-prompt-tokens", lo=1), help="Longest prompt (default: a slot's context)."
)
@click.option(
    "--max-tokens",
    type=bounded("--max-tokens", lo=1),
    help="Most tokens per sample a request may ask for, and the default (default: a slot's context).",
)
@click.option("--max-n", type=bounded("--max-n"), help="Most samples (n) per request (default: the slots).")
@click.option("--queue", default=DEFAULT_QUEUE, show_default=True, type=bounded("--queue"),
              help="Requests that may wait for a slot; beyond them: 429 with Retry-After.")  # fmt: skip
@click.option(
    "--grace",
    default=DEFAULT_GRACE_S,
    show_default=True,
    type=bounded_float("--grace"),
    help="Seconds running requests get to finish after SIGTERM; then cut (finish_reason 'shutdown').",
)
@click.option("--body-timeout", default=DEFAULT_BODY_TIMEOUT_S, show_default=True,
              type=bounded_float("--body-timeout", lo=0.1),
              help="Seconds a request body may take to arrive (408 past it).")  # fmt: skip
@click.option("--log-text", is_flag=True, help="Log prompts and completions (with -v); off: only counts and times.")
@click.option("--think-markers", metavar="OPEN,CLOSE",
              help="The model's thinking markers, e.g. '[THINK],[/THINK]' (default: its catalog entry's, else a known "
              "pair its chat template names, else <think>,</think>).")  # fmt: skip
@click.pass_context
def command(
    ctx: click.Context, /, model: str | None, plan_path: str | None, vram: str | None, gpu: str | None,
    tensor_split: str | None, kv: str | None, type_k: str | None, type_v: str | None, ctx_text: str, parallel: int,
    ngl: int, margin: str, greedy: bool, temperature: float, top_p: float, top_k: int, flash_attn: bool | None,
    threads: int | None, sampler: SamplerPlace, host: str, port: int, api_key: str | None, name: str | None,
    max_body: str, max_prompt_tokens: int | None, max_tokens: int | None, max_n: int | None, queue: int,
    grace: float, body_timeout: float, log_text: bool, think_markers: str | None,
) -> None:  # fmt: skip
    """Serve a GGUF (or a pick's plan) over the OpenAI HTTP API, on edgekv's batched engine.

    Requests share the slots; beyond them they queue, beyond --queue they get 429. Each request
    may ask for n samples, a thinking budget ("thinking_budget"), and a majority "vote" of its
    samples (docs/serve.md). Listens on 127.0.0.1 unless --host; needs the serve extra
    (pip install "edgekv[serve]").

    What to serve: MODEL, a plan file (--plan), or just a card (--vram or --gpu): then pick's top
    plan for it, the file edgekv download --vram fetches.

    \b
    Examples:
      edgekv download --vram 8G && edgekv serve --vram 8G
      edgekv pick --vram 8G --json > plan.json && edgekv serve --plan plan.json
      edgekv serve model.gguf --vram 8G --parallel 8 --ctx 32k --api-key secret
    """
    from edgekv.requests.run import RunRequest
    from edgekv.requests.serve import ServeRequest
    from edgekv.serve.main import serve

    slots = parallel if given(ctx, "parallel") else (None if plan_path else DEFAULT_SLOTS)
    run = RunRequest(
        model=model, plan_path=plan_path, vram=vram, gpu=gpu, tensor_split=tensor_split, kv=kv, type_k=type_k,
        type_v=type_v, ctx=ctx_text if given(ctx, "ctx_text") else None, parallel=slots,
        ngl=ngl if given(ctx, "ngl") else None, margin=margin, prompt="", needs_prompt=False, greedy=greedy,
        temperature=temperature, top_p=top_p, top_k=top_k, flash_attn=flash_attn, threads=threads,
    )  # fmt: skip
    request = ServeRequest(
        run=run, host=host, port=port, api_key=api_key, name=name, max_body=max_body,
        max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens, max_n=max_n, queue=queue, grace_s=grace,
        body_timeout_s=body_timeout, log_text=log_text, think_markers=think_markers,
    )  # fmt: skip
    serve(request.resolve(), sampler=sampler, verbose=verbosity(ctx) >= 2, echo=lambda line: click.echo(line, err=True))
