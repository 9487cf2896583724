"""pick's options, shared with ``edgekv download --vram``: the card, the catalog, the rule's constants.

Declarations only; their values become an ``edgekv.requests.pick.PickFlags``, parsed there. --gpu is
also run's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from edgekv.model.quant import DEFAULT_KV_TYPES
from edgekv.model.spec import Task
from edgekv.plan.memory import DEFAULT_MARGIN_BYTES
from edgekv.plan.plans import E1_BYTES, E2_BYTES, MAX_PARALLEL, SATURATION_TOKENS, SIMILAR, TOKEN_FLOOR
from edgekv.plan.requests import DEFAULT_FAMILY
from edgekv.requests.bounded import bounded, bounded_float
from edgekv.units import GIB, MIB

F = TypeVar("F", bound=Callable[..., Any])


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f}G"


def gpu_option() -> Callable[[F], F]:
    """``--gpu NAME|auto``, shared by pick, download and run; read by ``edgekv.requests.card.resolve_card``."""
    return click.option("--gpu", "gpu", metavar="NAME|auto", help="The card by name ('RTX 4060', '3060 12GB', "
                        "'RX 7900 XTX'): its memory, and its bandwidth for predicted speed; auto: this machine's "
                        "card through NVML.")  # fmt: skip


def tensor_split_option() -> Callable[[F], F]:
    """``--tensor-split``, shared by pick, download and run."""
    return click.option("--tensor-split", "tensor_split", metavar="A,B[,...]", help="Each device's share of the "
                        "layers (llama.cpp -ts).  [default: proportional to --vram]")  # fmt: skip


def pick_options(f: F) -> F:
    """The options pick shares with ``edgekv download --vram``."""
    kv_default = ",".join(k.value for k in DEFAULT_KV_TYPES)
    opts = [
        click.option("--vram", "vram", metavar="SIZE[,SIZE...]", help="Card memory: 8G, 8GiB, 7.5G, 8192M (binary "
                     "units); 12G,8G for several devices (llama.cpp's layer split, in llama.cpp's device order: RPC "
                     "servers first, then local GPUs)."),
        gpu_option(),
        click.option("--max-time", "max_time", metavar="DURATION", help="Only plans that answer within this (90s, "
                     "2m, 1h), each answer as long as fits; needs --gpu."),
        tensor_split_option(),
        click.option("--task", type=click.Choice([t.value for t in Task]), default=Task.MATH.value, show_default=True,
                     help="Sets the weight-precision rule (rule 3)."),
        click.option("--family", default=DEFAULT_FAMILY, show_default=True,
                     help="Catalog family: qwen3 (the family the paper measured), deepseek-r1-distill, or all."),
        click.option("--model", "model", help="Only these catalog models (comma-separated names)."),
        click.option("--quants", help="Only these weight quants (comma-separated, e.g. Q8_0,Q4_K_M)."),
        click.option("--kv", "kv", help=f"KV cache types to consider.  [default: {kv_default}]"),
        click.option("--mixed-kv", is_flag=True, help="Also mixed K/V pairs (CUDA needs GGML_CUDA_FA_ALL_QUANTS)."),
        click.option("--min-ctx", default="0", show_default=True,
                     help="Smallest tokens per sample to accept (4k, 16384)."),
        click.option("--allow-offload", is_flag=True, help="Also plans that keep some layers in system RAM."),
        click.option("--overhead", default="auto", show_default=True,
                     help="CUDA context + workspace: auto (measured: 600-696 MiB) or a size; 0 for none."),
        click.option("--margin",
                     help=f"Safety margin kept free (0 allowed).  [default: {DEFAULT_MARGIN_BYTES // MIB}M]"),
        click.option("--accounting", type=click.Choice(["runtime", "paper"]), default="runtime", show_default=True,
                     help="paper = weights + KV only (overhead, margin and compute buffers 0), as the paper counts."),
        click.option("--gguf", "gguf_path", type=click.Path(dir_okay=False),
                     help="Rank a local GGUF file instead of the catalog."),
        click.option("--repo", help="Rank a hub repo's GGUF files, sized exactly from their headers (network)."),
        click.option("--e1", help=f"Scale threshold E1 (paper: 8-bit Qwen3-4B)  [default: {_gib(E1_BYTES)}]"),
        click.option("--e2", help=f"Second threshold E2 (paper: 8-bit Qwen3-8B)  [default: {_gib(E2_BYTES)}]"),
        click.option("--token-floor", help=f"Shortest useful reasoning budget.  [default: {TOKEN_FLOOR // 1024}k]"),
        click.option("--saturation", help=f"Budget where accuracy saturates.  [default: {SATURATION_TOKENS // 1024}k]"),
        click.option("--max-parallel", type=bounded("--max-parallel"), help=f"Largest G.  [default: {MAX_PARALLEL}]"),
        click.option("--similar", type=bounded_float("--similar"),
                     help=f"Band within which effective sizes count as similar (E1 comparison).  [default: {SIMILAR}]"),
        click.option("--cap-precision/--no-cap-precision", "cap_precision", default=True, show_default=True,
                     help="Below E1 count weights above 8 bits as their 8-bit size, F32 as 16-bit (rule 3); "
                     "--no-cap-precision ranks by the file's bytes."),
        click.option("--profile",
                     help="A calibration profile (edgekv calibrate): its constants where no flag is given."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f
