"""The tensors llama.cpp's ``convert_hf_to_gguf.py`` writes for a Hugging Face config.

Stdlib only: from a ``config.json`` dict this lists every GGUF tensor (``spec.TensorInfo``: name,
source type, shape in ggml order) without touching weights, so ``quantrules`` can size any quant of a model that has
not been downloaded. Defaults are derived like mlx-lm's ``BaseModelArgs`` (``models/llama.py``).

phi3 (Phi-4, Phi-4-mini and their reasoning finetunes) keeps the checkpoint's fused ``attn_qkv`` and
``ffn_up`` (gate and up stacked: 2 x n_ff rows), as ``src/models/phi3.cpp`` loads them, and LongRoPE
checkpoints get ``rope_factors_long/short``. smollm3 is the llama block without rope_freqs; its
no-RoPE layers (every 4th, ``n_no_rope_layer_step``) change the graph, not the tensors or the KV cache.
exaone (EXAONE 3.0/3.5 and EXAONE Deep, ``ExaoneForCausalLM``) is the llama block too, as
``src/models/exaone.cpp`` loads it (separate q/k/v, gate/up/down, no biases, ``output`` optional: the
2.4B ties it); with llama3 RoPE scaling ``conversion/exaone.py`` writes ``rope_freqs`` (head_dim / 2
factors), as conversion/llama.py does. Its config spells the layer count ``num_layers`` and the norm
epsilon ``layer_norm_epsilon`` (``spec.hf_n_layer`` / ``hf_norm_eps``).

Mixture-of-experts blocks (qwen3moe, gpt-oss) follow ``load_arch_tensors`` in llama.cpp's
``src/models/qwen3moe.cpp`` and ``src/models/openai-moe.cpp``: one 3-D tensor per expert matrix
(``ffn_{gate,up,down}_exps``, ne2 = the expert count) and the router ``ffn_gate_inp`` (kept F32 by
the converter). gpt-oss checkpoints published in MXFP4 keep their experts MXFP4 whatever the outtype
(conversion/gpt_oss.py ``repack_mxfp4``); its attention has biases and per-head sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekv.errors import SpecError, UnsupportedModel
from edgekv.model.spec import HF_ARCHS, TensorInfo, hf_experts, hf_n_layer, hf_norm_eps

__all__ = ["ARCHITECTURES", "ArchParams", "gguf_arch", "gguf_tensors"]

# HF ``architectures[0]`` -> llama.cpp arch name (conversion/__init__.py, conversion/llama.py): the
# architectures whose tensors this module lists (gemma3 is sized from its GGUF only).
ARCHITECTURES: dict[str, str] = {k: v for k, v in HF_ARCHS.items() if v != "gemma3"}
_SOURCE_DTYPES = ("F16", "BF16", "F32")


@dataclass(frozen=True, slots=True)
class ArchParams:
    """The hyperparameters of a config that fix its GGUF tensor shapes and llama.cpp metadata."""

    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_ctx_train: int
    rms_norm_eps: float
    rope_theta: float
    tied_embeddings: bool
    attention_bias: bool
    mlp_bias: bool
    llama3_rope: bool
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_swa: int = 0
    mxfp4_experts: bool = False  # gpt-oss from an MXFP4 checkpoint: experts stay MXFP4
    rope_factor_dims: int = 0  # phi3 with LongRoPE: entries of rope_factors_long/short (rope dims / 2)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ArchParams:
        """Keep the known keys of an HF config and derive the defaults, like BaseModelArgs.from_dict."""
        arch = gguf_arch(config)
        try:
            n_embd = int(config["hidden_size"])
            n_head = int(config["num_attention_heads"])
            n_kv = config.get("num_key_value_heads")
            head_dim = config.get("head_dim")
            rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
            rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
            rope_type = str(rope.get("rope_type", rope.get("type", ""))).lower()
            n_expert, n_used, n_ff_exp = hf_experts(config, arch)
            quant_method = (config.get("quantization_config") or {}).get("quant_method")
            return cls(
                arch=arch,
                n_layer=hf_n_layer(config),
                n_embd=n_embd,
                n_ff=int(config["intermediate_size"]),
                n_head=n_head,
                n_head_kv=int(n_kv) if n_kv is not None else n_head,
                head_dim=int(head_dim) if head_dim is not None else n_embd // n_head,
                n_vocab=int(config["vocab_size"]),
                n_ctx_train=int(config.get("max_position_embeddings", 4096)),
                rms_norm_eps=hf_norm_eps(config),
                rope_theta=float(rope_theta),
                tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                # Qwen2 always has q/k/v biases (and no o bias): modeling_qwen2.py
                attention_bias=bool(config.get("attention_bias", False)),
                mlp_bias=bool(config.get("mlp_bias", False)),
                llama3_rope=arch in ("llama", "exaone") and rope_type == "llama3",
                n_expert=n_expert,
                n_expert_used=n_used,
                n_ff_exp=n_ff_exp,
                n_swa=int(config["sliding_window"]) if arch == "gpt-oss" else 0,
                mxfp4_experts=arch == "gpt-oss" and quant_method == "mxfp4",
                rope_factor_dims=_phi3_rope_factor_dims(config, rope, n_embd, n_head) if arch == "phi3" else 0,
            )
        except KeyError as e:
            raise SpecError(f"config.json lacks {e.args[0]!r}", hint="pass a full Hugging Face config") from None


def _phi3_rope_factor_dims(config: dict[str, Any], rope: dict[str, Any], n_embd: int, n_head: int) -> int:
    """conversion/phi.py Phi3MiniModel.generate_extra_tensors: with ``rope_scaling.long_factor`` the
    converter writes rope_factors_long/short of rope_dims / 2 entries each, rope_dims =
    int(partial_rotary_factor x hidden_size) // num_attention_heads; without it, none."""
    if not rope.get("long_factor"):
        return 0
    rot_pct = float(rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0)))
    return (int(rot_pct * n_embd) // n_head) // 2


def gguf_arch(config: dict[str, Any]) -> str:
    """llama.cpp's architecture name ('qwen3', 'qwen2', 'llama', 'qwen3moe', 'gpt-oss') for an HF config."""
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    shown = ", ".join(map(str, names)) or "no 'architectures' key"
    known = ", ".join(ARCHITECTURES)
    raise UnsupportedModel(f"unsupported architecture: {shown}", hint=f"edgekv knows {known}")


def gguf_tensors(config: dict[str, Any], *, outtype: str = "F16") -> list[TensorInfo]:
    """The tensors convert_hf_to_gguf.py writes for ``config`` (ModelBase.prepare_tensors rules).

    2-D weights get ``outtype``; 1-D tensors (norms, biases, rope_freqs) are F32, as the converter
    forces ``n_dims <= 1 or name.endswith("_norm.weight")`` to F32.
    """
    wtype = outtype.upper()
    if wtype not in _SOURCE_DTYPES:
        raise SpecError(f"unsupported converter outtype {outtype!r}", hint="use F16, BF16 or F32")
    p = ArchParams.from_config(config)
    q_dim, kv_dim = p.n_head * p.head_dim, p.n_head_kv * p.head_dim
    out: list[TensorInfo] = [TensorInfo("token_embd.weight", wtype, (p.n_embd, p.n_vocab))]
    for i in range(p.n_layer):
        out.extend(_layer(p, i, wtype, q_dim=q_dim, kv_dim=kv_dim))
    out.append(TensorInfo("output_norm.weight", "F32", (p.n_embd,)))
    if not p.tied_embeddings:
        out.append(TensorInfo("output.weight", wtype, (p.n_embd, p.n_vocab)))
    if p.llama3_rope:
        # conversion/llama.py generate_extra_tensors: one factor per rotary pair
        out.append(TensorInfo("rope_freqs.weight", "F32", (p.head_dim // 2,)))
    if p.rope_factor_dims:  # phi3 LongRoPE (conversion/phi.py): F32, one copy for every layer
        out.append(TensorInfo("rope_factors_long.weight", "F32", (p.rope_factor_dims,)))
        out.append(TensorInfo("rope_factors_short.weight", "F32", (p.rope_factor_dims,)))
    return out


def _layer(p: ArchParams, i: int, wtype: str, *, q_dim: int, kv_dim: int) -> list[TensorInfo]:
    """One block's tensors, as llama.cpp's load_arch_tensors expects them for ``p.arch``."""
    b = f"blk.{i}"
    if p.arch == "phi3":  # models/phi3.cpp: fused q|k|v and gate|up, as the checkpoint stores them
        return [
            TensorInfo(f"{b}.attn_norm.weight", "F32", (p.n_embd,)),
            TensorInfo(f"{b}.attn_qkv.weight", wtype, (p.n_embd, q_dim + 2 * kv_dim)),
            TensorInfo(f"{b}.attn_output.weight", wtype, (q_dim, p.n_embd)),
            TensorInfo(f"{b}.ffn_norm.weight", "F32", (p.n_embd,)),
            TensorInfo(f"{b}.ffn_up.weight", wtype, (p.n_embd, 2 * p.n_ff)),
            TensorInfo(f"{b}.ffn_down.weight", wtype, (p.n_ff, p.n_embd)),
        ]
    t = [
        TensorInfo(f"{b}.attn_norm.weight", "F32", (p.n_embd,)),
        TensorInfo(f"{b}.attn_q.weight", wtype, (p.n_embd, q_dim)),
        TensorInfo(f"{b}.attn_k.weight", wtype, (p.n_embd, kv_dim)),
        TensorInfo(f"{b}.attn_v.weight", wtype, (p.n_embd, kv_dim)),
        TensorInfo(f"{b}.attn_output.weight", wtype, (q_dim, p.n_embd)),
    ]
    if p.arch == "gpt-oss":
        t.append(TensorInfo(f"{b}.post_attention_norm.weight", "F32", (p.n_embd,)))
    else:
        t.append(TensorInfo(f"{b}.ffn_norm.weight", "F32", (p.n_embd,)))
    t.extend(_experts(p, b, wtype) if p.n_expert else _dense_ffn(p, b, wtype))
    if p.arch in ("qwen3", "qwen3moe"):
        t.append(TensorInfo(f"{b}.attn_q_norm.weight", "F32", (p.head_dim,)))
        t.append(TensorInfo(f"{b}.attn_k_norm.weight", "F32", (p.head_dim,)))
    if p.arch == "qwen2" or p.attention_bias:
        t.append(TensorInfo(f"{b}.attn_q.bias", "F32", (q_dim,)))
        t.append(TensorInfo(f"{b}.attn_k.bias", "F32", (kv_dim,)))
        t.append(TensorInfo(f"{b}.attn_v.bias", "F32", (kv_dim,)))
    if p.arch != "qwen2" and p.attention_bias:
        t.append(TensorInfo(f"{b}.attn_output.bias", "F32", (p.n_embd,)))
    if p.arch == "gpt-oss":
        t.append(TensorInfo(f"{b}.attn_sinks.weight", "F32", (p.n_head,)))  # one sink logit per head
    return t


def _dense_ffn(p: ArchParams, b: str, wtype: str) -> list[TensorInfo]:
    t = [
        TensorInfo(f"{b}.ffn_gate.weight", wtype, (p.n_embd, p.n_ff)),
        TensorInfo(f"{b}.ffn_up.weight", wtype, (p.n_embd, p.n_ff)),
        TensorInfo(f"{b}.ffn_down.weight", wtype, (p.n_ff, p.n_embd)),
    ]
    if p.mlp_bias:
        t.append(TensorInfo(f"{b}.ffn_gate.bias", "F32", (p.n_ff,)))
        t.append(TensorInfo(f"{b}.ffn_up.bias", "F32", (p.n_ff,)))
        t.append(TensorInfo(f"{b}.ffn_down.bias", "F32", (p.n_embd,)))
    return t


def _experts(p: ArchParams, b: str, wtype: str) -> list[TensorInfo]:
    """The router and the stacked experts (ne2 = n_expert) of one MoE block; gpt-oss adds biases."""
    xtype = "MXFP4" if p.mxfp4_experts else wtype
    n_embd, n_ff, n_x = p.n_embd, p.n_ff_exp, p.n_expert
    t = [
        TensorInfo(f"{b}.ffn_gate_inp.weight", "F32", (n_embd, n_x)),  # the converter keeps routers F32
        TensorInfo(f"{b}.ffn_gate_exps.weight", xtype, (n_embd, n_ff, n_x)),
        TensorInfo(f"{b}.ffn_up_exps.weight", xtype, (n_embd, n_ff, n_x)),
        TensorInfo(f"{b}.ffn_down_exps.weight", xtype, (n_ff, n_embd, n_x)),
    ]
    if p.arch == "gpt-oss":
        t.append(TensorInfo(f"{b}.ffn_gate_inp.bias", "F32", (n_x,)))
        t.append(TensorInfo(f"{b}.ffn_gate_exps.bias", "F32", (n_ff, n_x)))
        t.append(TensorInfo(f"{b}.ffn_up_exps.bias", "F32", (n_ff, n_x)))
        t.append(TensorInfo(f"{b}.ffn_down_exps.bias", "F32", (n_embd, n_x)))
    return t
