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


def ram_bandwidth_option() -> Callable[[F], F]:
    """``--ram-bandwidth``, shared by pick, download and bench: the speed model's RAM term."""
    return click.option("--ram-bandwidth", "ram_bandwidth", metavar="GB/s", help="System RAM bandwidth for the "
                        "weights the CPU reads (layers or MoE experts kept in RAM): 60GB/s, 76.8G, 1.2TB/s.  "
                        "[default: 76.8GB/s, dual-channel DDR5-4800]")  # fmt: skip


def ram_option() -> Callable[[F], F]:
    """``--ram SIZE``, shared by pick, download, run and bench: system RAM for a plan's host side."""
    return click.option("--ram", "ram", metavar="SIZE", help="System RAM a plan may use for what stays on the host "
                        "(experts of a MoE, offloaded layers, llama.cpp's host buffers), as --vram's sizes; 0 = "
                        "GPU only.  [default: $EDGEKV_RAM, else this machine's available RAM less max(10%, "
                        "1G)]")  # fmt: skip


def n_cpu_moe_option() -> Callable[[F], F]:
    """``--n-cpu-moe N``, shared by run and bench: llama.cpp's flag, through edgekv's own overrides."""
    return click.option("--n-cpu-moe", "n_cpu_moe", type=bounded("--n-cpu-moe"), default=None, help="Keep the experts "
                        "of the first N blocks of a mixture-of-experts model in RAM (llama.cpp --n-cpu-moe).  "
                        "[default: the plan's, else 0]")  # fmt: skip


def tensor_split_option() -> Callable[[F], F]:
    """``--tensor-split``, shared by pick, download and run."""
    return click.option("--tensor-split", "tensor_split", metavar="A,B[,...]", help="Each device's share of the "
                        "layers (llama.cpp -ts).  [default: proportional to --vram]")  # fmt: skip


# what to rank: a local file, a hub repo or the catalog (filtered by --model, --quants) - one at a time
SOURCE_PAIRS = (
    ("gguf_path", "repo", "--gguf ranks a local file, --repo a hub repo's files; give one"),
    ("gguf_path", "model", "--model picks catalog models, --gguf ranks only that file; give one"),
    ("repo", "model", "--model picks catalog models, --repo ranks only that repo's files; give one"),
    ("gguf_path", "quants", "--quants filters the catalog's or a --repo's files, --gguf ranks only that file"),
)


def pick_options(f: F) -> F:
    """The options pick shares with ``edgekv download --vram``."""
    kv_default = ",".join(k.value for k in DEFAULT_KV_TYPES)
    opts = [
        click.option("--vram", "vram", metavar="SIZE[,SIZE...]", help="Card memory: 8G, 8GiB, 7.5G, 8192M (binary "
                     "units); 12G,8G for several devices (llama.cpp's layer split, in llama.cpp's device order: RPC "
                     "servers first, then local GPUs)."),
        gpu_option(),
        ram_option(),
        click.option("--max-time", "max_time", metavar="DURATION", help="Only plans that answer within this (90s, "
                     "2m, 1h), each answer as long as fits; needs --gpu."),
        ram_bandwidth_option(),
        tensor_split_option(),
        click.option("--task", type=click.Choice([t.value for t in Task]), default=Task.MATH.value, show_default=True,
                     help="Sets the weight-precision rule (rule 3)."),
        click.option("--family", default=DEFAULT_FAMILY, show_default=True,
                     help="Catalog family: all (every model, ranked by Qwen3-equivalent capacity), qwen3 (the "
                          "family the paper measured), or another (edgekv catalog list shows them)."),
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
        click.option("--capacity", type=click.Choice(["published", "size"]), default="published", show_default=True,
                     help="What a model's size counts as for the rule: published = its Qwen3-equivalent size read "
                     "from published reasoning scores (MoE models; docs/rule.md), size = its own bytes (E alone)."),
        click.option("--profile",
                     help="A calibration profile (edgekv calibrate): its constants where no flag is given."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f
