"""What edgekv knows about a model: ModelSpec, built from a config.json here or from a GGUF header
(``gguf_spec.from_gguf_fields``).

Pure module: stdlib only, no I/O. ``gguf_reader`` reads a file into the dicts those functions take.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekv.errors import SpecError, UnsupportedModel
from edgekv.model.quant import tensor_bytes

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
    # Mixture of experts ({arch}.expert_* keys; llama_model_base::load_hparams): 0 for a dense model.
    n_expert: int = 0  # routed experts per block (expert_count)
    n_expert_used: int = 0  # experts each token is routed to (expert_used_count, the largest per block)
    n_ff_exp: int = 0  # feed-forward width of one expert (expert_feed_forward_length)
    n_expert_shared: int = 0  # always-on shared experts (expert_shared_count; 0 when the key is absent)
    n_ff_shexp: int = 0  # feed-forward width of the shared expert (expert_shared_feed_forward_length)

    def n_embd_k_gqa(self, il: int) -> int:
        return self.n_head_kv[il] * self.head_dim_k

    def n_embd_v_gqa(self, il: int) -> int:
        return self.n_head_kv[il] * self.head_dim_v

    def is_swa(self, il: int) -> bool:
        return bool(self.swa_layers) and self.swa_layers[il]

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model (its feed-forward is routed experts)."""
        return self.n_expert > 0

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


def swa_layers(arch: str, n_layer: int, n_swa: int, pattern: Any) -> tuple[bool, ...]:
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


# HF architectures -> llama.cpp arch names, for the decoders edgekv sizes from config.json.
HF_ARCHS: dict[str, str] = {
    "Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama", "Gemma3ForCausalLM": "gemma3",
    "Qwen3MoeForCausalLM": "qwen3moe", "GptOssForCausalLM": "gpt-oss", "Phi3ForCausalLM": "phi3",
    "SmolLM3ForCausalLM": "smollm3", "ExaoneForCausalLM": "exaone",
}  # fmt: skip
# The HF keys of the layer count, in the order llama.cpp's converter tries them (conversion/base.py
# TextModel: find_hparam), and of the RMS-norm epsilon: EXAONE 3.x / Deep configs (ExaoneConfig) say
# num_layers and layer_norm_epsilon (an RMS norm's epsilon: src/models/exaone.cpp reads it as
# attention.layer_norm_rms_epsilon), the others num_hidden_layers and rms_norm_eps.
_HF_N_LAYER = ("n_layers", "num_hidden_layers", "n_layer", "num_layers")
_HF_NORM_EPS = ("rms_norm_eps", "layer_norm_epsilon")
# Architectures whose sliding window llama.cpp ignores although the GGUF names one: models/phi3.cpp
# ("Phi SWA is currently disabled", llama.cpp PR 13676) sets n_swa = 0 and no SWA layer.
SWA_DISABLED = frozenset({"phi3"})
MOE_ARCHS = frozenset({"qwen3moe", "gpt-oss"})
# The HF keys llama.cpp's converter tries, in order (conversion/base.py TextModel.set_gguf_parameters).
_HF_N_EXPERT = ("num_local_experts", "num_experts", "n_routed_experts")
_HF_N_EXPERT_USED = ("num_experts_per_tok", "num_experts_per_token", "top_k_experts")


def hf_n_layer(config: Mapping[str, Any]) -> int:
    """The number of blocks of an HF config (``num_hidden_layers``, or EXAONE's ``num_layers``)."""
    for k in _HF_N_LAYER:
        if config.get(k) is not None:
            return int(config[k])
    raise KeyError("num_hidden_layers")


def hf_norm_eps(config: Mapping[str, Any], default: float = 1e-6) -> float:
    """The RMS-norm epsilon of an HF config (``rms_norm_eps``, or EXAONE's ``layer_norm_epsilon``)."""
    return next((float(config[k]) for k in _HF_NORM_EPS if config.get(k) is not None), default)


def hf_experts(config: Mapping[str, Any], arch: str) -> tuple[int, int, int]:
    """(experts, experts used per token, expert feed-forward width) of an HF config; (0, 0, 0) if dense.

    The width is what the converter writes as ``{arch}.expert_feed_forward_length``: qwen3moe's
    ``moe_intermediate_size`` (conversion/qwen.py Qwen2MoeModel; without it llama.cpp's qwen3moe
    takes n_ff / n_expert_used), gpt-oss's ``intermediate_size`` (conversion/gpt_oss.py).
    """
    if arch not in MOE_ARCHS:
        return 0, 0, 0
    n_expert = next((int(config[k]) for k in _HF_N_EXPERT if config.get(k) is not None), 0)
    n_used = next((int(config[k]) for k in _HF_N_EXPERT_USED if config.get(k) is not None), 0)
    if not 0 < n_used <= n_expert:
        raise SpecError(f"a {arch} config needs num_experts >= num_experts_per_tok > 0; it has {n_expert} and {n_used}")
    if arch == "qwen3moe" and (config.get("mlp_only_layers") or int(config.get("decoder_sparse_step") or 1) != 1):
        raise UnsupportedModel(
            "a qwen3moe config with dense blocks (mlp_only_layers / decoder_sparse_step)",
            hint="llama.cpp's qwen3moe has experts in every block",
        )
    if arch == "gpt-oss":
        return n_expert, n_used, int(config["intermediate_size"])
    width = config.get("moe_intermediate_size")
    return n_expert, n_used, int(width) if width is not None else int(config["intermediate_size"]) // n_used


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
        n_layer = hf_n_layer(config)
        n_embd = int(config["hidden_size"])
        n_head = int(config["num_attention_heads"])
        n_ff = int(config["intermediate_size"])
        n_vocab = int(config["vocab_size"])
        n_expert, n_expert_used, n_ff_exp = hf_experts(config, arch)
    except KeyError as e:
        raise SpecError(f"config.json lacks {e.args[0]}") from None
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = int(config.get("head_dim") or n_embd // n_head)
    n_swa = int(config.get("sliding_window") or 0) if arch in SWA_PATTERNS and arch not in SWA_DISABLED else 0
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
        swa_layers=swa_layers(arch, n_layer, n_swa, config.get("sliding_window_pattern")),
        n_swa=n_swa,
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        tensors=tuple(tensors),
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=n_ff_exp,
    )
