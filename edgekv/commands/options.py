"""Argument parsing shared by the commands (pick, download, run, bench, eval, sweep, inspect, convert).

Parsing only: each helper turns CLI strings into the typed values the library takes, checks an
input path, or finds the GGUF a plan file names. The card (--gpu, --vram) is in ``card_options``,
pick's options in ``pick_options`` and ``pick_params``.
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from edgekv.llama.sampling import SamplerPlace


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


def kv_pairs(text: str) -> list[tuple[Any, Any]]:
    """'f16,q8_0,q8_0/f16' -> [(f16, f16), (q8_0, q8_0), (q8_0, f16)] (K/V for a mixed pair)."""
    from edgekv.model.quant import KvType
    from edgekv.units import parse_list

    out = []
    for item in parse_list(text):
        k, _, v = item.partition("/")
        out.append((KvType.parse(k), KvType.parse(v or k)))
    return out


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


sampler_option = click.option(
    "--sampler",
    type=click.Choice([p.value for p in SamplerPlace]),
    callback=lambda _ctx, _param, value: SamplerPlace(value),
    default="auto",
    show_default=True,
    help="Where the sampler chains run: host (auto: a numpy top-k cut of all rows, then each chain in C on its "
    "candidates); full (llama.cpp's chain over each whole row, the same tokens, slower); backend (in llama.cpp's "
    "decode graph) or split (top-k in the graph, the rest on the host), both for 4 x (n_ubatch + 1) x n_vocab bytes "
    "more compute buffer (counted in the pre-flight; 297 MiB for Qwen3).",
)
