"""llama_tensor_get_type_impl (``src/llama-quant.cpp``): the type an ftype's mixture gives one tensor.

The branches by tensor category (output, attn_v, ffn_down, attn_output, the 2-bit-and-below IQ
types, ...) and the running counters they read and bump (``use_more_bits`` layers), as
``quantrules.quantized_types`` walks the tensors in the loader's order. Mirrors the source
vendored by llama-cpp-python 0.3.36. Stdlib only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgekv.errors import SpecError
from edgekv.model.quant import GGML_TYPES
from edgekv.model.spec import TensorInfo

__all__ = ["BLK_RE", "MixState", "mixture_type"]

_IQ_LOW = ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M")  # the 2-bit-and-below branch
BLK_RE = re.compile(r"blk\.([+-]?\d+)")  # a block tensor's layer (also the loader's order in quantrules)


@dataclass(slots=True)
class MixState:
    """quantize_state_impl: the model facts and the running counters."""

    ftype: str
    arch: str
    n_gqa: int
    n_expert: int
    is_70b: bool
    has_imatrix: bool
    has_tied_embeddings: bool
    n_attention_wv: int
    n_layer: int  # n_ffn_down = n_ffn_gate = n_ffn_up = hparams.n_layer_all
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """The use_more_bits lambda of llama_tensor_get_type_impl (math.fmod: C's % keeps the sign)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or math.fmod(i_layer - n_layers // 8, 3) == 2


def _layer_info(qs: MixState, i_layer: int, name: str) -> int:
    """layer_info: with experts the layer comes from the name, else from the counter."""
    if max(1, qs.n_expert) > 1:
        m = BLK_RE.match(name)
        if m is None:
            raise SpecError(f"Failed to determine layer for tensor {name}")
        i_layer = int(m.group(1))
        if not 0 <= i_layer < qs.n_layer:
            raise SpecError(f"Bad layer {i_layer} for tensor {name}. Must be in [0, {qs.n_layer})")
    return i_layer


def _output_type(qs: MixState, new_type: str, tensor: TensorInfo) -> str:
    """The OUTPUT (and tied TOKEN_EMBD) branch of llama_tensor_get_type_impl."""
    if qs.ftype == "MXFP4_MOE":
        return "Q8_0"
    if qs.arch == "falcon" or tensor.shape[0] % GGML_TYPES[new_type].block_size != 0:
        return "Q8_0"
    if qs.ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
        return "Q5_K"
    return new_type if new_type == "Q8_0" else "Q6_K"


def _iq_low_type(qs: MixState, new_type: str, cat: str) -> str:
    """The IQ2_XXS/IQ2_XS/IQ2_S/IQ2_M/IQ1_S/IQ1_M branch of llama_tensor_get_type_impl."""
    ft, iq2sm = qs.ftype, qs.ftype in ("IQ2_S", "IQ2_M")
    if cat in ("ATTENTION_V", "ATTENTION_QKV", "ATTENTION_KV_B"):
        if qs.n_gqa >= 4 or qs.n_expert >= 4:
            new_type = "Q4_K"
        else:
            new_type = "IQ3_S" if iq2sm else "Q2_K"
        qs.i_attention_wv += 1
    elif qs.n_expert == 8 and cat == "ATTENTION_K":
        new_type = "Q4_K"
    elif cat == "FFN_DOWN":
        if qs.i_ffn_down < qs.n_layer // 8:
            new_type = "IQ3_S" if iq2sm else "Q2_K"
        qs.i_ffn_down += 1
    elif cat == "ATTENTION_OUTPUT":
        if qs.n_expert == 8:
            new_type = "Q5_K"
        elif ft in ("IQ1_S", "IQ1_M"):
            new_type = "IQ2_XXS"
        elif iq2sm:
            new_type = "IQ3_S"
    return new_type


def _attn_v_type(qs: MixState, new_type: str) -> str:
    """The attn_v/attn_qkv/attn_kv_b branch of llama_tensor_get_type_impl."""
    ft, gqa4 = qs.ftype, qs.n_gqa >= 4
    if ft == "Q2_K":
        new_type = "Q4_K" if gqa4 else "Q3_K"
    elif ft == "Q2_K_S" and gqa4:
        new_type = "Q4_K"
    elif ft == "IQ3_XXS":
        new_type = "Q4_K" if gqa4 else ("IQ3_S" if not qs.has_imatrix else "IQ3_XXS")
    elif ft in ("IQ3_XS", "IQ3_S") and gqa4:
        new_type = "Q4_K"
    elif ft == "IQ3_M":
        new_type = "Q4_K"
    elif ft == "Q3_K_M":
        new_type = "Q5_K" if qs.i_attention_wv < 2 else "Q4_K"
    elif ft == "Q3_K_L":
        new_type = "Q5_K"
    elif ft in ("IQ4_NL", "IQ4_XS") and gqa4:
        new_type = "Q5_K"
    elif ft in ("Q4_K_M", "Q5_K_M") and _use_more_bits(qs.i_attention_wv, qs.n_attention_wv):
        new_type = "Q6_K"
    elif ft == "Q4_K_S" and qs.i_attention_wv < 4:
        new_type = "Q5_K"
    if qs.is_70b and new_type in ("Q3_K", "Q4_K"):
        new_type = "Q5_K"  # 70B: 8 heads share attn_v, so more bits cost little
    if qs.n_expert == 8:
        new_type = "Q8_0"
    qs.i_attention_wv += 1
    return new_type


def _ffn_down_type(qs: MixState, new_type: str, name: str) -> str:
    """The ffn_down branch of llama_tensor_get_type_impl."""
    ft, falcon = qs.ftype, qs.arch == "falcon"
    i, n = _layer_info(qs, qs.i_ffn_down, name), qs.n_layer
    if ft == "Q2_K":
        new_type = "Q3_K"
    elif ft == "Q2_K_S":
        if i < n // 8:
            new_type = "Q4_K"
    elif ft == "IQ3_XXS" and not qs.has_imatrix:
        new_type = "Q4_K" if i < n // 8 else "Q3_K"
    elif ft == "Q3_K_M":
        if i < n // 16:
            new_type = "Q5_K"
        else:
            new_type = "Q4_K" if not falcon or _use_more_bits(i, n) else "Q3_K"
    elif ft == "IQ3_M" and (i < n // 8 or (qs.n_expert == 8 and _use_more_bits(i, n))):
        new_type = "Q4_K"
    elif ft == "Q3_K_L":
        new_type = "Q4_K" if falcon else "Q5_K"
    elif ft == "Q4_K_M":
        if falcon:
            new_type = "Q6_K" if i < n // 16 else ("Q5_K" if _use_more_bits(i, n) else "Q4_K")
        elif _use_more_bits(i, n):
            new_type = "Q6_K"
    elif i < n // 8 and ft in ("IQ4_NL", "IQ4_XS") and not qs.has_imatrix:
        new_type = "Q5_K"
    elif ft == "Q5_K_M" and _use_more_bits(i, n):
        new_type = "Q6_K"
    elif ft == "Q4_K_S" and not falcon and i < n // 8:
        new_type = "Q5_K"
    elif ft in ("Q4_0", "Q5_0") and qs.has_imatrix and i < n // 8:
        new_type = "Q4_1" if ft == "Q4_0" else "Q5_1"
    qs.i_ffn_down += 1
    return new_type


def _attn_output_type(qs: MixState, new_type: str) -> str:
    """The attn_output branch of llama_tensor_get_type_impl."""
    ft = qs.ftype
    if qs.arch == "falcon":
        return "Q4_K" if ft == "Q3_K_L" else new_type
    if qs.n_expert == 8:
        bump = ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                "IQ3_S", "IQ3_M", "IQ4_XS")  # fmt: skip
        return "Q5_K" if ft in bump else new_type
    table = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}
    return table.get(ft, new_type)


def mixture_type(qs: MixState, new_type: str, tensor: TensorInfo, cat: str) -> str:
    """llama_tensor_get_type_impl: the mixture's choice for one tensor (updates the counters)."""
    ft = qs.ftype
    if cat == "OUTPUT" or (qs.has_tied_embeddings and cat == "TOKEN_EMBD"):
        return _output_type(qs, new_type, tensor)
    if ft == "MXFP4_MOE":  # expert tensors (ne2 > 1) MXFP4, every other tensor Q8_0 (bailingmoe3's rule left out)
        return "MXFP4" if len(tensor.shape) > 2 and tensor.shape[2] > 1 else "Q8_0"
    if cat == "TOKEN_EMBD":
        if ft in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        return "IQ3_S" if ft in ("IQ2_S", "IQ2_M", "IQ3_XXS") else new_type
    if ft in _IQ_LOW:
        return _iq_low_type(qs, new_type, cat)
    if cat in ("ATTENTION_V", "ATTENTION_QKV", "ATTENTION_KV_B"):
        return _attn_v_type(qs, new_type)
    if cat == "ATTENTION_K":
        if qs.n_expert == 8:
            return "Q8_0"
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ft, new_type)
    if cat == "ATTENTION_Q":
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ft, new_type)
    if cat == "FFN_DOWN":
        return _ffn_down_type(qs, new_type, tensor.name)
    if cat == "ATTENTION_OUTPUT":
        return _attn_output_type(qs, new_type)
    if cat in ("FFN_GATE", "FFN_UP"):
        counter = qs.i_ffn_gate if cat == "FFN_GATE" else qs.i_ffn_up
        i, n = _layer_info(qs, counter, tensor.name), qs.n_layer
        if ft == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            new_type = "IQ3_XXS"
        if cat == "FFN_GATE":
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
    return new_type
