"""``edgekv run``: run a GGUF with llama.cpp under a fixed VRAM cap, and show what it used."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource


def kv_types(kv: str | None, type_k: str | None, type_v: str | None) -> tuple[Any, Any]:
    """(K, V) KvTypes from --kv or --type-k/--type-v (f16 where nothing is said)."""
    from edgekv.quant import KvType

    both = KvType.parse(kv) if kv else None
    k = KvType.parse(type_k) if type_k else both or KvType.F16
    v = KvType.parse(type_v) if type_v else both or KvType.F16
    return k, v


def read_plan(path: str) -> dict[str, Any]:
    """The first plan of ``edgekv pick --json`` output, as run settings."""
    from edgekv.errors import SpecError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read plan {path}: {e}") from None
    plans = data.get("plans") if isinstance(data, dict) else None
    if not plans:
        raise SpecError(f"{path} has no plans", hint="write it with edgekv pick --vram 8G --json > plan.json")
    p = plans[0]
    args: dict[str, Any] = p.get("llama_args") or {}
    py_args = args.get("python")
    py: dict[str, Any] = py_args if isinstance(py_args, dict) else args
    return {
        "model": py.get("model_path") or py.get("model") or p.get("path"),
        "repo": p.get("repo"),
        "file": p.get("file"),
        "type_k": p.get("type_k"),
        "type_v": p.get("type_v"),
        "n_ctx": p.get("n_ctx") or py.get("n_ctx"),
        "parallel": p.get("parallel") or args.get("n_seq_max"),
        "n_gpu_layers": p.get("n_gpu_layers", py.get("n_gpu_layers")),
        "vram_bytes": data.get("vram_bytes"),
        "base": Path(path).resolve().parent,
    }


def plan_model_path(plan: dict[str, Any]) -> str:
    """The plan's GGUF: a local path (as given, or next to the plan), else huggingface_hub's cache."""
    from edgekv.errors import ModelFileNotFound

    for cand in (plan.get("model"), plan.get("file")):
        if cand:
            for p in (Path(cand), plan["base"] / cand):
                if p.is_file():
                    return str(p)
    if plan.get("repo") and plan.get("file"):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(plan["repo"], plan["file"])
            if isinstance(cached, str) and Path(cached).is_file():
                return cached
        except ImportError:
            pass
    name = plan.get("file") or plan.get("model") or "the plan's model"
    raise ModelFileNotFound(
        f"{name} is not on this machine",
        hint=f"fetch it with edgekv download {plan['repo']} {plan['file']}" if plan.get("repo") else "pass MODEL.gguf",
    )


def verbosity(ctx: click.Context) -> int:
    obj = ctx.find_root().obj
    return int(obj.get("verbosity", 0)) if isinstance(obj, dict) else 0


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)


def memory_rows(fp: Any, measured: Any, *, gpu: bool) -> list[tuple[str, int | None, int | None]]:
    """(part, predicted bytes, measured bytes) rows of the end-of-run memory table."""
    buffers = measured.model + measured.kv + measured.compute
    rows: list[tuple[str, int | None, int | None]] = [
        ("weights", fp.weights_gpu, measured.model),
        ("KV cache", fp.kv, measured.kv),
        ("compute", fp.compute, measured.compute),
    ]
    if gpu:
        other = measured.process - buffers if measured.process is not None else None
        rows.append(("CUDA context + workspace", fp.overhead, other))
        rows.append(("total (NVML, process)", fp.gpu_total - fp.margin, measured.process))
    else:
        rows.append(("llama.cpp buffers", fp.gpu_total - fp.margin, buffers))
        rows.append(("process peak RSS", None, measured.process))
    return rows


def memory_table(fp: Any, measured: Any, *, gpu: bool, title: str) -> Any:
    from rich import box
    from rich.table import Table

    from edgekv.units import format_bytes

    t = Table(title=title, box=box.SIMPLE_HEAD)
    t.add_column("part")
    t.add_column("predicted", justify="right")
    t.add_column("measured", justify="right")
    for part, pred, meas in memory_rows(fp, measured, gpu=gpu):
        t.add_row(
            part, format_bytes(pred) if pred is not None else "", format_bytes(meas) if meas is not None else "n/a"
        )
    return t


def strip_thinking(text: str) -> str:
    """Qwen3's templates drop the reasoning of earlier turns from the history."""
    return re.sub(r"<think>.*?</think>\s*", "", text, flags=re.DOTALL).strip()


@click.command("run")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--vram", metavar="SIZE", help="VRAM cap: 8G, 6GiB, 7.5G. Refuses what would not fit.")
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
@click.option("--ngl", default=-1, show_default=True, type=int, help="Layers on the GPU (-1: all).")
@click.option("--prompt", help="Prompt text (the model's chat template is applied unless --raw).")
@click.option("--chat", is_flag=True, help="Chat on stdin, one message per line.")
@click.option("--raw", is_flag=True, help="Send --prompt as is, without the chat template.")
@click.option(
    "--max-tokens", default=512, show_default=True, type=click.IntRange(1), help="Tokens to generate per sample."
)
@click.option("--greedy", is_flag=True, help="Greedy decoding instead of sampling.")
@click.option("--temperature", default=0.6, show_default=True, type=float, help="Qwen3 thinking-mode default.")
@click.option("--top-p", default=0.95, show_default=True, type=float)
@click.option("--top-k", default=20, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--flash-attn/--no-flash-attn", "flash_attn", default=None, help="Default: on (a quantized V needs it).")
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: all cores).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Settings from edgekv pick --json output.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the samples, timings and memory.")
@click.pass_context
def command(
    ctx: click.Context,
    /,
    model: str | None,
    vram: str | None,
    kv: str | None,
    type_k: str | None,
    type_v: str | None,
    ctx_text: str,
    **opts: Any,
) -> None:
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
    from edgekv import bench, runtime
    from edgekv.errors import SpecError
    from edgekv.memory import RunConfig
    from edgekv.units import format_bytes, parse_size, parse_tokens

    o = dict(opts)
    ctx_opt = ctx_text
    cap_text = vram
    plan = read_plan(o["plan_path"]) if o.get("plan_path") else None
    if plan:
        model = model or plan_model_path(plan)
        if not given(ctx, "vram") and plan.get("vram_bytes"):
            vram = str(plan["vram_bytes"])
            cap_text = f"{format_bytes(int(vram))} (from the plan)"
        if not (given(ctx, "kv") or given(ctx, "type_k") or given(ctx, "type_v")):
            type_k, type_v = plan.get("type_k") or type_k, plan.get("type_v") or type_v
        if not given(ctx, "ctx_text") and plan.get("n_ctx"):
            ctx_opt = str(plan["n_ctx"])
        if not given(ctx, "parallel") and plan.get("parallel"):
            o["parallel"] = int(plan["parallel"])
        if not given(ctx, "ngl") and plan.get("n_gpu_layers") is not None:
            o["ngl"] = int(plan["n_gpu_layers"])
    if not model:
        raise click.UsageError("give MODEL.gguf or --plan plan.json")
    if o["chat"] and o["parallel"] > 1:
        raise click.UsageError("--chat runs one sample; drop --parallel")
    if o["chat"] and o["prompt"]:
        raise click.UsageError("give --prompt or --chat, not both")
    prompt = o["prompt"]
    if not o["chat"] and prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give --prompt TEXT, --chat, or a prompt on stdin")
        prompt = sys.stdin.read()
    verbose = verbosity(ctx) >= 2

    tk, tv = kv_types(kv, type_k, type_v)
    fa = runtime.resolve_flash_attn(tk, tv, o["flash_attn"])  # KvConfigError before anything loads
    auto = str(ctx_opt).strip().lower() == "auto"
    n_ctx = 4096 if auto else parse_tokens(ctx_opt)
    if not auto and n_ctx < 1:
        raise SpecError("--ctx must be positive")
    cfg = RunConfig(n_ctx=n_ctx, type_k=tk, type_v=tv, n_seq=o["parallel"], n_gpu_layers=o["ngl"], flash_attn=fa)
    vram_bytes = parse_size(vram) if vram else None
    if (o["ngl"] != 0 or vram_bytes) and not runtime.gpu_offload_supported():
        click.echo(
            "note: this llama-cpp-python build has no GPU offload; running on the CPU, with --vram capping what "
            f"llama.cpp allocates. For a GPU build:\n  {runtime.CUDA_REINSTALL}",
            err=True,
        )
    prepared = bench.prepare(model, cfg, vram_bytes=vram_bytes, auto_ctx=auto, cap_text=cap_text, verbose=verbose)
    cfg = prepared.cfg
    samp = runtime.Sampling(
        temperature=o["temperature"], top_p=o["top_p"], top_k=o["top_k"], seed=o["seed"], greedy=o["greedy"]
    )
    if not o["as_json"]:
        kv_text = tk.value if tk == tv else f"{tk.value}/{tv.value}"
        budget = f"--vram {cap_text}" if vram else "the free memory"
        click.echo(
            f"{Path(model).name}: {cfg.n_ctx} tokens, {kv_text} KV, {cfg.n_seq} sample(s), flash attention "
            f"{'on' if fa else 'off'}; predicted {format_bytes(prepared.footprint.gpu_total)} of {budget}",
            err=True,
        )
    with bench.open_run(prepared, n_threads=o["threads"], verbose=verbose) as session:
        runner = session.runner
        if o["chat"]:
            gens = _chat(runner, samp, o["max_tokens"], stream=not o["as_json"])
        else:
            assert prompt is not None
            text = prompt if o["raw"] else runner.apply_chat_template([{"role": "user", "content": prompt}])
            tokens = runner.tokenize(text)

            def stream(seq: int, _tok: int, piece: str) -> None:
                if seq == 0 and not o["as_json"]:
                    click.echo(piece, nl=False)

            gens = [runner.generate(tokens, o["max_tokens"], n_seq=cfg.n_seq, sampling=samp, on_token=stream)]
            if not o["as_json"]:
                click.echo("")
                for i, s in enumerate(gens[0].sequences[1:], start=2):
                    click.echo(f"\n--- sample {i} ---\n{s.text}")
        measured = bench.measure(session)
    _report(prepared, measured, gens, as_json=o["as_json"], model=model, vram_bytes=vram_bytes)


def _chat(runner: Any, samp: Any, max_tokens: int, *, stream: bool) -> list[Any]:
    """One turn per stdin line; earlier turns stay in the KV cache (only the new tokens decode)."""
    messages: list[dict[str, str]] = []
    gens = []
    stdin = sys.stdin
    tty = stdin.isatty()
    while True:
        if tty:
            click.echo("> ", nl=False, err=True)
        line = stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.strip()})
        tokens = runner.tokenize(runner.apply_chat_template(messages))
        gen = runner.generate(
            tokens, max_tokens, sampling=samp, on_token=(lambda s, t, p: click.echo(p, nl=False)) if stream else None
        )
        if stream:
            click.echo("")
        messages.append({"role": "assistant", "content": strip_thinking(gen.sequences[0].text)})
        gens.append(gen)
    return gens


def _report(
    prepared: Any, measured: Any, gens: list[Any], *, as_json: bool, model: str, vram_bytes: int | None
) -> None:
    from edgekv import bench, runtime

    fp = prepared.footprint
    if as_json:
        cfg = prepared.cfg
        out = {
            "model": Path(model).name,
            "path": str(model),
            "vram_bytes": vram_bytes,
            "device": bench.device_name(prepared.gpu),
            "gpu": prepared.gpu,
            "config": {
                "n_ctx": cfg.n_ctx,
                "type_k": cfg.type_k.value,
                "type_v": cfg.type_v.value,
                "parallel": cfg.n_seq,
                "n_gpu_layers": cfg.n_gpu_layers,
                "flash_attn": cfg.flash_attn,
                "n_ubatch": cfg.n_ubatch,
            },  # fmt: skip
            "predicted": bench.predicted_dict(fp),
            "measured": measured.as_dict(),
            "turns": [
                {
                    "n_prompt": g.n_prompt,
                    "n_prompt_evaluated": g.n_prompt_evaluated,
                    "prompt_tps": round(g.prompt_tps, 2),
                    "decode_tps": round(g.decode_tps, 2),
                    "samples": [{"text": s.text, "n_tokens": len(s.tokens), "finish": s.finish} for s in g.sequences],
                }  # fmt: skip
                for g in gens
            ],
            "build": runtime.build_info(),
        }
        click.echo(json.dumps(out, indent=2))
        return
    from edgekv import report

    con = report.console(stderr=True)
    for g in gens:
        con.print(
            f"prompt {g.n_prompt} tokens ({g.prompt_tps:.1f} tokens/s); generated {g.n_generated} tokens "
            f"({g.decode_tps:.1f} tokens/s)"
        )
    con.print(memory_table(fp, measured, gpu=prepared.gpu, title="memory: predicted vs measured"))
