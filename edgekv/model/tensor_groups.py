"""Weight bytes by tensor group (attention, experts, router, ...), in total and per block.

The groups are what a placement plan moves as a unit: llama.cpp's ``--n-cpu-moe N`` and
``-ot exps=CPU`` keep the *experts* group of the first N (or all) blocks in host memory, and
``-ngl`` moves whole blocks. A tensor's group comes from its GGUF name (gguf-py's
``constants.TENSOR_NAMES``); the experts group is exactly what llama.cpp's own pattern
``LLM_FFN_EXPS_REGEX`` matches (``common/common.h``), weights and biases alike, so its bytes are
what those flags move. Pure module: stdlib only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from edgekv.model.spec import ModelSpec, TensorInfo

__all__ = [
    "EXPS_RE", "TensorGroup", "expert_layer_bytes", "group_bytes", "layer_groups", "tensor_group", "tensor_groups",
]  # fmt: skip

# llama.cpp common/common.h: LLM_FFN_EXPS_REGEX ("--cpu-moe", "--n-cpu-moe N" with "blk\.%d" before it)
EXPS_RE = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")
# llama.cpp common/common.h: LLM_FFN_DENSE_REGEX ("--n-cpu-ffn N")
_DENSE_FFN_RE = re.compile(r"\.ffn_(up|down|gate)\.")


class TensorGroup(str, enum.Enum):
    """Where a weight tensor belongs when a plan places weights on the GPU or in RAM."""

    ATTENTION = "attention"  # attn_q/k/v/qkv/output weights and biases, attention sinks
    FFN = "ffn"  # a dense block's ffn_gate/up/down
    EXPERTS = "experts"  # routed experts: ffn_{gate,up,down,gate_up}_exps (and _chexps), weights and biases
    SHARED_EXPERTS = "shared_experts"  # ffn_*_shexp and the shared expert's gate ffn_gate_inp_shexp
    ROUTER = "router"  # ffn_gate_inp (weight, bias) and the selection bias exp_probs_b
    EMBEDDINGS = "embeddings"  # token_embd: the input layer, always in host memory in llama.cpp
    OUTPUT = "output"  # output.weight, the LM head (absent when tied to token_embd)
    OTHER = "other"  # norms (attn_norm, ffn_norm, q/k norms, output_norm), rope_freqs, anything else


def tensor_group(name: str) -> TensorGroup:
    """The group of a GGUF tensor, from its name."""
    if EXPS_RE.search(name):
        return TensorGroup.EXPERTS
    if "_shexp" in name:
        return TensorGroup.SHARED_EXPERTS
    if ".ffn_gate_inp." in name or ".exp_probs_b" in name:
        return TensorGroup.ROUTER
    if "_norm" in name:
        return TensorGroup.OTHER
    if ".attn_" in name:
        return TensorGroup.ATTENTION
    if _DENSE_FFN_RE.search(name):
        return TensorGroup.FFN
    if name.startswith("token_embd."):
        return TensorGroup.EMBEDDINGS
    if name.startswith("output."):
        return TensorGroup.OUTPUT
    return TensorGroup.OTHER


def group_bytes(tensors: Iterable[TensorInfo]) -> dict[TensorGroup, int]:
    """Bytes of ``tensors`` per group, every group present (0 when empty), in TensorGroup order."""
    out = dict.fromkeys(TensorGroup, 0)
    for t in tensors:
        out[tensor_group(t.name)] += t.n_bytes
    return out


def tensor_groups(spec: ModelSpec) -> dict[TensorGroup, int]:
    """Bytes of a spec's weights per group; they sum to ``spec.weights_bytes`` (each tensor once)."""
    return group_bytes(spec.tensors)


def layer_groups(spec: ModelSpec) -> tuple[dict[TensorGroup, int], ...]:
    """Bytes per group of each block ``blk.N`` (input and output tensors are in no block)."""
    by_layer: list[list[TensorInfo]] = [[] for _ in range(spec.n_layer)]
    for t in spec.tensors:
        il = t.layer
        if il is not None and il < spec.n_layer:
            by_layer[il].append(t)
    return tuple(group_bytes(ts) for ts in by_layer)


def expert_layer_bytes(spec: ModelSpec) -> tuple[int, ...]:
    """The experts group's bytes of each block: ``--n-cpu-moe N`` keeps the sum of the first N in RAM."""
    return tuple(g[TensorGroup.EXPERTS] for g in layer_groups(spec))
