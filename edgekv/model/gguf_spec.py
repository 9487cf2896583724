"""A ModelSpec from a GGUF header's key/values and tensor infos, every value checked.

Counts must be integers in range (positive, at most the file's size, layers at most llama.cpp's
LLAMA_MAX_LAYERS); a missing or impossible value is a SpecError naming the key and the value.
Pure module: stdlib only, no I/O. ``gguf_reader`` reads a file into the dicts this takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from typing import Any

from edgekv.errors import SpecError
from edgekv.model.quant import file_type_name
from edgekv.model.spec import SWA_DISABLED, ModelSpec, TensorInfo, swa_layers

LLAMA_MAX_LAYERS = 512  # llama.cpp src/llama-hparams.h
LLAMA_MAX_EXPERTS = 1024  # llama.cpp src/llama-hparams.h
MAX_UINT32 = (1 << 32) - 1


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(key: str, value: Any, *, lo: int, hi: int) -> int:
    """An integer header value in ``lo..hi``, else a SpecError naming the key and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(f"{key} is {_show(value)}; llama.cpp needs an integer in {lo}..{hi}")
    return value


def _per_layer(key: str, value: Any, n_layer: int, *, lo: int, hi: int) -> tuple[int, ...]:
    """A per-layer value: one integer for every layer, or an array with an entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) < n_layer:
            raise SpecError(f"{key} has {len(value)} entries for {n_layer} layers")
        return tuple(_count(key, v, lo=lo, hi=hi) for v in value[:n_layer])
    return (_count(key, value, lo=lo, hi=hi),) * n_layer


def from_gguf_fields(
    fields: Mapping[str, Any], tensors: Sequence[TensorInfo], *, name: str | None = None, file_bytes: int | None = None
) -> ModelSpec:
    """Build a ModelSpec from a GGUF header's key/values and tensor infos.

    Every value is checked for type and range: counts are positive and no larger than the file
    (``file_bytes``; a uint32 without it), layers at most llama.cpp's LLAMA_MAX_LAYERS.

    Raises:
        SpecError: a key llama.cpp needs is missing, or a value is impossible (the message names both).
    """
    arch = fields.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise SpecError(f"general.architecture is {_show(arch)}; it must be a non-empty string")
    hi = min(file_bytes, MAX_UINT32) if file_bytes else MAX_UINT32

    def key(template: str) -> str:
        return template.format(arch=arch)

    def need(template: str) -> Any:
        if key(template) not in fields:
            raise SpecError(f"missing key {key(template)}")
        return fields[key(template)]

    def opt(template: str, default: Any) -> Any:
        return fields.get(key(template), default)

    def num(template: str, default: Any, *, lo: int, high: int = hi) -> int:
        return _count(key(template), opt(template, default), lo=lo, hi=high)

    need("{arch}.block_count"), need("{arch}.embedding_length")
    n_layer = num("{arch}.block_count", None, lo=1, high=LLAMA_MAX_LAYERS)
    n_embd = num("{arch}.embedding_length", None, lo=1)
    n_head_raw = need("{arch}.attention.head_count")
    n_head = max(_per_layer(key("{arch}.attention.head_count"), n_head_raw, n_layer, lo=0, hi=hi))
    if n_head < 1:
        raise SpecError(f"{key('{arch}.attention.head_count')} is {_show(n_head_raw)}; it must be at least 1")
    n_head_kv = _per_layer(
        key("{arch}.attention.head_count_kv"), opt("{arch}.attention.head_count_kv", n_head_raw), n_layer, lo=0, hi=hi
    )
    if not any(n_head_kv):
        raise SpecError(f"{key('{arch}.attention.head_count_kv')} is 0 for every layer: no KV cache to size")
    if key("{arch}.attention.key_length") in fields:
        head_dim_k = num("{arch}.attention.key_length", None, lo=1)
    elif n_embd < n_head:
        raise SpecError(f"embedding_length {n_embd} is below head_count {n_head}: the head size would be 0")
    else:
        head_dim_k = n_embd // n_head
    head_dim_v = num("{arch}.attention.value_length", head_dim_k, lo=1)
    n_ff_raw = opt("{arch}.feed_forward_length", 0)
    n_ff = max(_per_layer(key("{arch}.feed_forward_length"), n_ff_raw, n_layer, lo=0, hi=hi))
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    if key("{arch}.vocab_size") in fields:
        n_vocab = num("{arch}.vocab_size", None, lo=1)
    else:
        tokens = fields.get("tokenizer.ggml.tokens")
        n_vocab = embd.shape[1] if embd and len(embd.shape) > 1 else 0
        n_vocab = n_vocab or (len(tokens) if isinstance(tokens, Sized) and not isinstance(tokens, str) else 0)
    n_swa = num("{arch}.attention.sliding_window", 0, lo=0, high=MAX_UINT32)
    if arch in SWA_DISABLED:  # llama.cpp reads the key and then turns the window off (models/phi3.cpp)
        n_swa = 0
    pattern = opt("{arch}.attention.sliding_window_pattern", None)
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        _count(key("{arch}.attention.sliding_window_pattern"), pattern, lo=0, hi=LLAMA_MAX_LAYERS)
    n_ctx = num("{arch}.context_length", 0, lo=0, high=MAX_UINT32)
    ftype = fields.get("general.file_type")
    if ftype is not None:
        _count("general.file_type", ftype, lo=0, hi=MAX_UINT32)
    given_name = fields.get("general.name")
    n_expert, n_expert_used, n_ff_exp = _experts(key, fields, by_name, n_layer, hi=hi)

    return ModelSpec(
        name=name or (given_name if isinstance(given_name, str) and given_name else arch),
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_ctx_train=n_ctx,
        swa_layers=swa_layers(arch, n_layer, n_swa, pattern),
        n_swa=n_swa,
        tied_embeddings=bool(tensors) and "output.weight" not in by_name,
        file_type=file_type_name(ftype) if ftype is not None else None,
        tensors=tuple(tensors),
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=n_ff_exp,
        n_expert_shared=_count(key("{arch}.expert_shared_count"), fields.get(key("{arch}.expert_shared_count"), 0),
                               lo=0, hi=LLAMA_MAX_EXPERTS),
        n_ff_shexp=_count(key("{arch}.expert_shared_feed_forward_length"),
                          fields.get(key("{arch}.expert_shared_feed_forward_length"), 0), lo=0, hi=hi),
    )  # fmt: skip


def _experts(
    key: Callable[[str], str], fields: Mapping[str, Any], by_name: Mapping[str, TensorInfo], n_layer: int, *, hi: int
) -> tuple[int, int, int]:
    """(experts, experts used per token, expert feed-forward width), checked as load_hparams asserts them.

    The width is ``expert_feed_forward_length`` (largest per layer); without the key, the row count
    of blk.0's ffn_up_exps (what qwen3moe then derives as n_ff / n_expert_used must equal it to load).
    """
    n_expert = _count(key("{arch}.expert_count"), fields.get(key("{arch}.expert_count"), 0), lo=0, hi=LLAMA_MAX_EXPERTS)
    used_key = key("{arch}.expert_used_count")
    n_used = max(_per_layer(used_key, fields.get(used_key, 0), n_layer, lo=0, hi=LLAMA_MAX_EXPERTS))
    if n_used > n_expert or (n_expert and not n_used):
        raise SpecError(f"{used_key} is {n_used} with {n_expert} experts; llama.cpp needs 1..{n_expert}")
    ff_key = key("{arch}.expert_feed_forward_length")
    n_ff_exp = max(_per_layer(ff_key, fields.get(ff_key, 0), n_layer, lo=0, hi=hi))
    up = by_name.get("blk.0.ffn_up_exps.weight")
    if n_expert and not n_ff_exp and up is not None and len(up.shape) == 3:
        n_ff_exp = up.shape[1]
    return n_expert, n_used, n_ff_exp
