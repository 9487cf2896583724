"""What edgekv knows about a model: ModelSpec, built from a GGUF header or a config.json.

Pure module: stdlib only, no I/O. ``gguf_io`` reads a file into the dicts these functions take.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from edgekv.errors import SpecError, UnsupportedModel
from edgekv.model.quant import file_type_name, tensor_bytes

# llama.cpp's default sliding-window patterns (src/models/<arch>.cpp: load_swa_pattern(ml, N)):
# with pattern N, layer il is sliding-window unless il % N == N - 1 (dense_first: il % N == 0).
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False), "gemma3": (6, False), "gemma3n": (5, False), "gemma-embedding": (6, False),
    "cohere2": (4, False), "llama4": (4, False), "gpt-oss": (2, False), "exaone4": (4, False),
    "olmo2": (4, False), "phi3": (1, False), "plamo3": (8, False), "smallthinker": (4, True),
}  # fmt: skip


class Task(str, enum.Enum):
    """What the user will ask the model: sets the weight-precision rule (paper rule 3)."""

    MATH = "math"
    CODE = "code"
    KNOWLEDGE = "knowledge"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor of a GGUF: name, ggml type name and shape in ggml order (ne0 = row length)."""

    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def n_bytes(self) -> int:
        return tensor_bytes(self.type, self.shape)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def layer(self) -> int | None:
        """The block index of ``blk.N.*`` tensors, else None (input/output tensors)."""
        if self.name.startswith("blk."):
            part = self.name.split(".", 2)[1]
            return int(part) if part.isdigit() else None
        return None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture facts that decide memory: everything per layer where llama.cpp allows it."""

    name: str
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: tuple[int, ...]  # per layer; 0 where a layer has no KV (recurrent)
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    swa_layers: tuple[bool, ...] = ()  # per layer; empty means no sliding-window layers
    n_swa: int = 0
    tied_embeddings: bool = False
    file_type: str | None = None
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False)

    def n_embd_k_gqa(self, il: int) -> int:
        return self.n_head_kv[il] * self.head_dim_k

    def n_embd_v_gqa(self, il: int) -> int:
        return self.n_head_kv[il] * self.head_dim_v

    def is_swa(self, il: int) -> bool:
        return bool(self.swa_layers) and self.swa_layers[il]

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def weights_bytes(self) -> int:
        """Effective size E: bytes of every weight tensor (the paper's scale variable)."""
        return sum(t.n_bytes for t in self.tensors)

    def tensor_type_bytes(self) -> dict[str, int]:
        """Bytes of the weights grouped by ggml type, largest first."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.type] = out.get(t.type, 0) + t.n_bytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _swa_layers(arch: str, n_layer: int, n_swa: int, pattern: Any) -> tuple[bool, ...]:
    """Which layers use the sliding window, as llama_hparams::set_swa_pattern decides."""
    if n_swa <= 0:
        return ()
    if isinstance(pattern, (list, tuple)):
        if len(pattern) < n_layer:
            raise SpecError(f"sliding_window_pattern has {len(pattern)} entries for {n_layer} layers")
        return tuple(bool(x) for x in pattern[:n_layer])
    n_pattern, dense_first = SWA_PATTERNS.get(arch, (0, False))
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        n_pattern = pattern
    if arch not in SWA_PATTERNS and not isinstance(pattern, int):
        return ()  # arch takes no sliding window in llama.cpp even if the key is present
    if dense_first:
        return tuple(n_pattern == 0 or il % n_pattern != 0 for il in range(n_layer))
    return tuple(n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(n_layer))


LLAMA_MAX_LAYERS = 512  # llama.cpp src/llama-hparams.h
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
    pattern = opt("{arch}.attention.sliding_window_pattern", None)
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        _count(key("{arch}.attention.sliding_window_pattern"), pattern, lo=0, hi=LLAMA_MAX_LAYERS)
    n_ctx = num("{arch}.context_length", 0, lo=0, high=MAX_UINT32)
    ftype = fields.get("general.file_type")
    if ftype is not None:
        _count("general.file_type", ftype, lo=0, hi=MAX_UINT32)
    given_name = fields.get("general.name")

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
        swa_layers=_swa_layers(arch, n_layer, n_swa, pattern),
        n_swa=n_swa,
        tied_embeddings=bool(tensors) and "output.weight" not in by_name,
        file_type=file_type_name(ftype) if ftype is not None else None,
        tensors=tuple(tensors),
    )


# HF architectures -> llama.cpp arch names, for the dense decoders edgekv sizes from config.json.
HF_ARCHS: dict[str, str] = {
    "Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama", "Gemma3ForCausalLM": "gemma3",
}  # fmt: skip


def from_hf_config(
    config: Mapping[str, Any], *, name: str | None = None, tensors: Sequence[TensorInfo] = ()
) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json dict (keeps known keys, derives defaults)."""
    archs = config.get("architectures") or []
    arch = next((HF_ARCHS[a] for a in archs if a in HF_ARCHS), None)
    if arch is None:
        raise UnsupportedModel(
            f"architecture {', '.join(archs) or '(none given)'} is not supported",
            hint=f"edgekv knows {', '.join(sorted(HF_ARCHS))}",
        )
    try:
        n_layer = int(config["num_hidden_layers"])
        n_embd = int(config["hidden_size"])
        n_head = int(config["num_attention_heads"])
        n_ff = int(config["intermediate_size"])
        n_vocab = int(config["vocab_size"])
    except KeyError as e:
        raise SpecError(f"config.json lacks {e.args[0]}") from None
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = int(config.get("head_dim") or n_embd // n_head)
    n_swa = int(config.get("sliding_window") or 0) if arch in SWA_PATTERNS else 0
    return ModelSpec(
        name=name or str(config.get("_name_or_path") or archs[0]),
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=(n_head_kv,) * n_layer,
        head_dim_k=head_dim,
        head_dim_v=head_dim,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_ctx_train=int(config.get("max_position_embeddings") or 0),
        swa_layers=_swa_layers(arch, n_layer, n_swa, config.get("sliding_window_pattern")),
        n_swa=n_swa,
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        tensors=tuple(tensors),
    )
