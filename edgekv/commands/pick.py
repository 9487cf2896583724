"""``edgekv pick``: rank configurations for a card by the scale rule. Import-light by design:
this path never imports llama_cpp, huggingface_hub, gguf or numpy (a test checks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def pick_options(f: F) -> F:
    """The options pick shares with ``edgekv download --vram``."""
    opts = [
        click.option("--vram", "vram", metavar="SIZE", help="Card memory: 8G, 8GiB, 7.5G, 8192M (binary units)."),
        click.option("--gpu", "gpu", type=click.Choice(["auto"]), help="Read the card's total memory through NVML."),
        click.option(
            "--task",
            type=click.Choice(["math", "code", "knowledge"]),
            default="math",
            show_default=True,
            help="Sets the weight-precision rule (rule 3).",
        ),
        click.option(
            "--family",
            default="qwen3",
            show_default=True,
            help="Catalog family: qwen3 (the family the paper measured), deepseek-r1-distill, or all.",
        ),
        click.option("--model", "model", help="Only these catalog models (comma-separated names)."),
        click.option("--quants", help="Only these weight quants (comma-separated, e.g. Q8_0,Q4_K_M)."),
        click.option("--kv", "kv", default="f16,q8_0,q4_0", show_default=True, help="KV cache types to consider."),
        click.option("--mixed-kv", is_flag=True, help="Also mixed K/V pairs (CUDA needs GGML_CUDA_FA_ALL_QUANTS)."),
        click.option(
            "--min-ctx", default="0", show_default=True, help="Smallest tokens per sample to accept (4k, 16384)."
        ),
        click.option("--allow-offload", is_flag=True, help="Also plans that keep some layers in system RAM."),
        click.option(
            "--overhead",
            default="auto",
            show_default=True,
            help="CUDA context + workspace: auto (measured: 600-696 MiB) or a size; 0 for none.",
        ),
        click.option("--margin", default="256M", show_default=True, help="Safety margin kept free (0 allowed)."),
        click.option(
            "--accounting",
            type=click.Choice(["runtime", "paper"]),
            default="runtime",
            show_default=True,
            help="paper = weights + KV only (overhead, margin and compute buffers 0), as the paper counts.",
        ),
        click.option(
            "--gguf",
            "gguf_path",
            type=click.Path(dir_okay=False),
            help="Rank a local GGUF file instead of the catalog.",
        ),
        click.option("--repo", help="Rank a hub repo's GGUF files, sized exactly from their headers (network)."),
        click.option("--e1", default="4.19G", show_default=True, help="Scale threshold E1 (paper: 8-bit Qwen3-4B)."),
        click.option("--e2", default="8.94G", show_default=True, help="Second threshold E2 (paper: 8-bit Qwen3-8B)."),
        click.option("--token-floor", default="4k", show_default=True, help="Shortest useful reasoning budget."),
        click.option("--saturation", default="32k", show_default=True, help="Budget where accuracy saturates."),
        click.option("--max-parallel", default=16, show_default=True, type=click.IntRange(1, 64), help="Largest G."),
        click.option(
            "--similar",
            default=0.10,
            show_default=True,
            type=click.FloatRange(0, 0.5),
            help="Band within which effective sizes count as similar (E1 comparison).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_pick(params: dict[str, Any], *, top: int = 5) -> Any:
    """Build options, budget and policy from CLI params and call policy.pick."""
    from edgekv import catalog, policy
    from edgekv.errors import SpecError
    from edgekv.quant import KvType
    from edgekv.spec import Task
    from edgekv.units import parse_list, parse_size, parse_tokens

    vram = params.get("vram")
    if params.get("gpu") == "auto" and not vram:
        from edgekv.vram import gpu_info

        info = gpu_info()
        if info is None:
            raise SpecError(
                "--gpu auto found no NVIDIA GPU through NVML",
                hint="pass --vram with the card's memory, e.g. --vram 8G (pip install nvidia-ml-py for NVML)",
            )
        vram_bytes = info.total_bytes
    elif vram:
        vram_bytes = parse_size(vram)
    else:
        raise SpecError(
            "say how much memory the card has", hint="pass --vram 8G, or --gpu auto on a machine with an NVIDIA GPU"
        )
    paper = params.get("accounting") == "paper"
    overhead = params.get("overhead", "auto")
    budget = policy.Budget(
        vram_bytes=vram_bytes,
        overhead_bytes=0 if paper else (None if overhead == "auto" else parse_size(overhead, allow_zero=True)),
        margin_bytes=0 if paper else parse_size(params.get("margin", "256M"), allow_zero=True),
        include_compute=not paper,
    )
    pol = policy.Policy(
        task=Task(params.get("task", "math")),
        e1_bytes=parse_size(params.get("e1", "4.19G")),
        e2_bytes=parse_size(params.get("e2", "8.94G")),
        token_floor=parse_tokens(params.get("token_floor", "4k")),
        saturation_tokens=parse_tokens(params.get("saturation", "32k")),
        max_parallel=int(params.get("max_parallel", 16)),
        similar=float(params.get("similar", 0.10)),
        kv_types=tuple(KvType.parse(k) for k in parse_list(params.get("kv", "f16,q8_0,q4_0"))),
        mixed_kv=bool(params.get("mixed_kv")),
        allow_offload=bool(params.get("allow_offload")),
        min_ctx=parse_tokens(params.get("min_ctx", "0")),
    )
    if params.get("gguf_path"):
        options = [_gguf_option(params["gguf_path"])]
    elif params.get("repo"):
        from edgekv.hub import options_from_repo

        options = options_from_repo(
            params["repo"],
            quants=parse_list(params["quants"]) if params.get("quants") else None,
            endpoint=params.get("endpoint"),
        )
    else:
        family = params.get("family", "qwen3")
        if params.get("model") or family == "all":
            family = None  # --model names any catalog model
        models = catalog.select(catalog.load_catalog(), family=family, model=params.get("model"))
        if not models:
            raise SpecError(
                f"no catalog model matches --family {params.get('family')!r} --model {params.get('model')!r}",
                hint="families: qwen3, deepseek-r1-distill; see models/",
            )
        quants = parse_list(params["quants"]) if params.get("quants") else None
        options = policy.options_from_catalog(models, quants=quants)
    return policy.pick(options, budget, pol, top=top)


def _gguf_option(path: str) -> Any:
    """A local GGUF as a pick option (imports only our own header reader, no gguf/numpy)."""
    from pathlib import Path

    from edgekv.gguf_io import read_spec
    from edgekv.memory import WeightLayout
    from edgekv.policy import ModelOption

    spec = read_spec(path)
    return ModelOption(
        name=Path(path).stem, quant=spec.file_type or "?", spec=spec, layout=WeightLayout.from_spec(spec),
        effective_bytes=spec.weights_bytes, path=str(path), n_params=spec.n_params,
    )  # fmt: skip


def top_plan_for_download(params: dict[str, Any]) -> tuple[str, str]:
    """(repo, file) of pick's top plan, for ``edgekv download --vram``."""
    from edgekv.errors import ModelFileNotFound

    result = run_pick(params, top=1)
    best = result.plans[0]
    if not best.option.repo or not best.option.file:
        raise ModelFileNotFound(f"the catalog names no published file for {best.option.name} {best.option.quant}")
    return best.option.repo, best.option.file


@click.command("pick")
@pick_options
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 100), help="How many plans to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(top: int, as_json: bool, **params: Any) -> None:
    """Rank model x weight quant x KV type x context x parallel samples for a card.

    Applies the scale rule of "Not All Bits Are Equal" (arXiv 2510.10964): below an effective
    size of E1 = 4.19 GiB ("8-bit 4B") memory goes to a larger or more precise model; above it,
    to a longer generation, then to parallel samples. Every byte is shown: weights, KV cache,
    compute buffers, CUDA overhead and margin.

    \b
    Examples:
      edgekv pick --vram 8G
      edgekv pick --vram 12G --task knowledge --json
      edgekv pick --vram 6G --family qwen3 --allow-offload
      edgekv pick --vram 2.6G --accounting paper --family qwen3
    """
    from edgekv import report

    result = run_pick(params, top=top)
    if as_json:
        click.echo(json.dumps(report.pick_dict(result), indent=2))
        return
    con = report.console()
    con.print(report.pick_table(result, width=con.width))
