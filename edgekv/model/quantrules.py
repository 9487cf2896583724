"""llama.cpp's per-tensor quant type rules (``src/llama-quant.cpp``), mirrored in pure Python.

``llama_model_quantize`` does not give every tensor the file type's base type: it keeps norms in
F32, bumps attn_v/ffn_down of some layers (``use_more_bits``), puts output/token_embd in Q6_K and
falls back to a 32-block type when a row is not a multiple of 256. This module reproduces that
choice tensor by tensor, so the weight bytes of any quant can be summed without the file; the
per-category branches of llama_tensor_get_type_impl are in ``quantmix``.
``tests/model/test_quantrules.py`` checks it against llama.cpp's own dry run (``params.dry_run``).
Mirrors the source vendored by llama-cpp-python 0.3.36. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgekv.errors import SpecError, UnsupportedModel
from edgekv.model.quant import GGML_TYPES, WeightQuant, tensor_bytes
from edgekv.model.quantmix import BLK_RE, MixState, mixture_type
from edgekv.model.spec import TensorInfo

__all__ = [
    "QUANT_ARCHS",
    "SUPPORTED_QUANTS",
    "quantized_types",
    "tensor_allows_quantization",
    "tensor_category",
    "tensor_type_fallback",
    "type_bytes",
    "weights_bytes",
]

# Every llama_ftype edgekv names; each is checked against llama.cpp's dry run in the tests.
SUPPORTED_QUANTS: frozenset[WeightQuant] = frozenset(WeightQuant)
# Arches whose llm_type (only LLM_TYPE_70B matters here) is mirrored in _is_70b.
# qwen3moe and gpt-oss have no arch-specific branch in llama-quant.cpp: only their expert count
# (n_expert >= 4 / == 8 rules, layers read from tensor names) and 3-D expert tensors matter. phi3 and
# smollm3 (and exaone) have none either (llama-quant.cpp branches only on falcon, glm5-next and bailingmoe3); phi3's
# fused attn_qkv is the ATTENTION_QKV category and counts as an attn_v for use_more_bits.
QUANT_ARCHS: frozenset[str] = frozenset({"qwen3", "qwen2", "llama", "qwen3moe", "gpt-oss", "phi3", "smollm3", "exaone"})

_UNQUANTIZED = ("F32", "F16", "BF16")  # ggml_is_quantized() is false for these
# Substrings that tensor_allows_quantization keeps out of quantization (GLM5_NEXT's omitted).
_KEEP_SUBSTRINGS = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
    "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
)  # fmt: skip
# tensor_type_fallback: 256-block type -> 32-block type
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
    "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}  # fmt: skip


def tensor_category(name: str) -> str:
    """tensor_get_category: the broad role of a tensor, from its name."""
    if name == "output.weight":
        return "OUTPUT"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "TOKEN_EMBD"
    for key, cat in (
        ("attn_qkv.weight", "ATTENTION_QKV"), ("attn_kv_b.weight", "ATTENTION_KV_B"),
        ("attn_v.weight", "ATTENTION_V"), ("attn_k.weight", "ATTENTION_K"),
        ("attn_q.weight", "ATTENTION_Q"), ("attn_output.weight", "ATTENTION_OUTPUT"),
        ("ffn_up", "FFN_UP"), ("ffn_gate", "FFN_GATE"), ("ffn_down", "FFN_DOWN"),
    ):  # fmt: skip
        if key in name:
            return cat
    return "OTHER"


def _n_dims(shape: tuple[int, ...]) -> int:
    """ggml_n_dims: trailing dims of size 1 do not count."""
    for i in range(len(shape) - 1, 0, -1):
        if shape[i] > 1:
            return i + 1
    return 1


def tensor_allows_quantization(tensor: TensorInfo) -> bool:
    """tensor_allows_quantization with default params (not only_copy, quantize_output_tensor)."""
    if _n_dims(tensor.shape) < 2:
        return False
    name = tensor.name
    # C: name.rfind("weight") == name.size() - 6, which also holds for a 5-char name (npos wraps)
    if not (name.endswith("weight") or len(name) == 5):
        return False
    if name in ("position_embd.weight", "token_types.weight"):
        return False
    return not any(s in name for s in _KEEP_SUBSTRINGS)


def tensor_type_fallback(tensor: TensorInfo, target: str) -> str:
    """tensor_type_fallback: a 32-block type (or F16) when ne0 is not a multiple of the block."""
    ncols = tensor.shape[0]
    qk = GGML_TYPES[target].block_size
    if ncols % qk == 0:
        return target
    if target in _FALLBACK:
        out = _FALLBACK[target]
    elif qk <= 32:
        out = target
    else:
        raise SpecError(f"no tensor type fallback is defined for type {target}")
    return out if ncols % GGML_TYPES[out].block_size == 0 else "F16"


def _get_type(qs: MixState, tensor: TensorInfo, default_type: str) -> str:
    """llama_tensor_get_type with default params (no overrides, not pure)."""
    if not tensor_allows_quantization(tensor):
        return tensor.type
    if default_type in _UNQUANTIZED:
        return default_type
    new_type = mixture_type(qs, default_type, tensor, tensor_category(tensor.name))
    return tensor_type_fallback(tensor, new_type)


def _requires_imatrix(name: str, dst_type: str, ftype: str) -> bool:
    """tensor_requires_imatrix."""
    if tensor_category(name) in ("TOKEN_EMBD", "OUTPUT"):
        return False
    if dst_type in ("IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_M", "IQ1_S"):
        return True
    return dst_type == "Q2_K" and ftype == "Q2_K_S"


def _weight_order(name: str) -> tuple[int, str]:
    """llama_model_loader::weight_name_comparer: layer number (-1 outside blocks), then name."""
    m = BLK_RE.match(name)
    return (int(m.group(1)) if m else -1, name)


def _is_70b(arch: str, n_layer: int, n_expert: int, *, gqa: bool) -> bool:
    """llm_type == LLM_TYPE_70B as load_arch_hparams sets it (models/qwen2.cpp, models/llama.cpp)."""
    if arch == "qwen2":
        return n_layer == 80
    if arch == "llama":
        return n_expert != 8 and n_layer == 80 and gqa
    return False


def _gqa_from_shapes(tensors: Sequence[TensorInfo]) -> tuple[int, int]:
    """(q rows, k rows) of the first attention block, whose ratio is n_head / n_head_kv."""
    rows = {t.name: t.shape[1] for t in tensors if t.name.startswith("blk.0.") and len(t.shape) > 1}
    q, k = rows.get("blk.0.attn_q.weight"), rows.get("blk.0.attn_k.weight")
    if q is None or k is None:
        raise SpecError("cannot infer n_head / n_head_kv without blk.0.attn_q/attn_k", hint="pass n_head=")
    return q, k


def quantized_types(
    tensors: Sequence[TensorInfo],
    quant: WeightQuant,
    *,
    arch: str,
    n_layer: int,
    n_head: int | None = None,
    n_head_kv: int | None = None,
    n_expert: int = 0,
    has_imatrix: bool = False,
    allow_requantize: bool = False,
) -> dict[str, str]:
    """The ggml type llama_model_quantize gives each tensor (llama_model_quantize_impl's first loop).

    Default params (not pure, no overrides, quantize_output_tensor); ``has_imatrix`` says whether an
    importance matrix is given. Without one, ftypes whose tensors need it (IQ1/IQ2/IQ3_XXS, Q2_K_S)
    raise SpecError, as llama.cpp does. ``n_head``/``n_head_kv`` default to the blk.0 q/k ratio.
    A source tensor that is already quantized (gpt-oss's MXFP4 experts) and would change type raises
    SpecError unless ``allow_requantize``, as llama.cpp's main loop does ("requantizing from type
    mxfp4 is disabled"); its dry run does not check this.
    """
    if quant not in SUPPORTED_QUANTS:
        raise SpecError(f"no per-tensor rules for {quant.value}")
    if arch not in QUANT_ARCHS:
        raise UnsupportedModel(f"no quantization rules for architecture {arch!r}")
    if n_head is None or n_head_kv is None:
        n_head, n_head_kv = _gqa_from_shapes(tensors)
    ordered = sorted(tensors, key=lambda t: _weight_order(t.name))
    cats = [tensor_category(t.name) for t in ordered]  # init_quantize_state_counters
    qs = MixState(
        ftype=quant.value,
        arch=arch,
        n_gqa=n_head // n_head_kv if n_head_kv else 0,
        n_expert=n_expert,
        is_70b=_is_70b(arch, n_layer, n_expert, gqa=n_head != n_head_kv),
        has_imatrix=has_imatrix,
        has_tied_embeddings="OUTPUT" not in cats,
        n_attention_wv=sum(c in ("ATTENTION_V", "ATTENTION_QKV", "ATTENTION_KV_B") for c in cats),
        n_layer=n_layer,
    )
    default_type = quant.base_type.name  # llama_ftype_get_default_type
    out: dict[str, str] = {}
    for t in ordered:
        out[t.name] = new = _get_type(qs, t, default_type)
        if not has_imatrix and tensor_allows_quantization(t) and _requires_imatrix(t.name, new, qs.ftype):
            raise SpecError(
                f"{quant.value} needs an importance matrix ({t.name} -> {new})",
                hint="pass has_imatrix=True to size an imatrix quant",
            )
    for t in ordered:  # the main loop, after every type is chosen
        if not allow_requantize and out[t.name] != t.type and GGML_TYPES[t.type].block_size > 1:
            raise SpecError(
                f"{quant.value} would requantize {t.name} from {t.type} to {out[t.name]}, which llama.cpp refuses",
                hint=f"keep {t.type} (for MXFP4 experts: MXFP4_MOE) or pass allow_requantize=True",
            )
    return {t.name: out[t.name] for t in tensors}


def type_bytes(tensors: Sequence[TensorInfo], types: dict[str, str]) -> dict[str, int]:
    """Bytes of the tensors grouped by their ggml type (ggml_nbytes per tensor)."""
    totals: dict[str, int] = {}
    for t in tensors:
        ty = types.get(t.name, t.type)
        totals[ty] = totals.get(ty, 0) + tensor_bytes(ty, t.shape)
    return totals


def weights_bytes(tensors: Sequence[TensorInfo], types: dict[str, str]) -> int:
    """Total bytes of the tensors at ``types`` (a tensor not in ``types`` keeps its type)."""
    return sum(type_bytes(tensors, types).values())
