"""Where a plan's weights live: each tensor group's bytes on the GPU and in host memory.

A plan places whole blocks (``n_gpu_layers``, llama.cpp ``-ngl``) and, for a mixture of experts,
the routed experts of the first N blocks (``n_cpu_moe``, llama.cpp ``--n-cpu-moe N``) in host
memory; the input embedding (token_embd) is always in host memory, the output layer on the GPU
once any layer is offloaded (``memory.WeightLayout.split``). Every row is exact (sums of the
GGUF's or the catalog's tensor bytes); the rows add up to the layout's weights. Pure, stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from edgekv.plan.memory import gpu_layer_start
from edgekv.plan.plans import Plan

# block groups listed by name when every block is on the GPU (tensor_groups.TensorGroup values)
_BLOCK_GROUPS = ("attention", "ffn", "shared_experts", "router")


@dataclass(frozen=True, slots=True)
class Placed:
    """One tensor group: its bytes on the GPU and in host memory."""

    group: str
    gpu_bytes: int
    host_bytes: int

    def as_dict(self) -> dict[str, int | str]:
        return {"group": self.group, "gpu_bytes": self.gpu_bytes, "host_bytes": self.host_bytes}


def placement(plan: Plan) -> list[Placed]:
    """The plan's tensor groups: embeddings, experts (MoE), the blocks' other groups, output.

    With every block on the GPU and the option's bytes per group known (a MoE catalog entry or a
    GGUF), the blocks' other tensors are listed as attention, ffn, shared experts, router and
    norms; otherwise (whole blocks in RAM, per-block groups unknown) as one "blocks" row split by
    block placement, still exact."""
    opt = plan.option
    lay = opt.layout
    n_layer = len(lay.layer_bytes)
    ngl = plan.n_gpu_layers
    start = gpu_layer_start(n_layer, ngl)
    on_gpu_output = ngl != 0
    experts = lay.expert_bytes or (0,) * n_layer
    host_exp = sum(experts[:start]) + lay.host_experts(ngl, plan.n_cpu_moe)
    rows = [Placed("embeddings", 0, lay.input_bytes)]
    if any(experts):
        rows.append(Placed("experts", sum(experts) - host_exp, host_exp))
    rest_gpu = sum(lay.layer_bytes[start:]) - sum(experts[start:])
    rest_host = sum(lay.layer_bytes[:start]) - sum(experts[:start])
    groups = opt.group_bytes
    if start == 0 and groups:
        named = [(g, groups.get(g, 0)) for g in _BLOCK_GROUPS if groups.get(g, 0)]
        rows += [Placed(g, n, 0) for g, n in named]
        rows.append(Placed("norms", rest_gpu - sum(n for _, n in named), 0))
    else:
        rows.append(Placed("blocks" if not any(experts) else "blocks (non-expert)", rest_gpu, rest_host))
    out = lay.output_bytes if (on_gpu_output or not lay.tied_embeddings) else lay.output_bytes - lay.input_bytes
    rows.append(Placed("output", out if on_gpu_output else 0, 0 if on_gpu_output else out))
    return rows


def cpu_moe_patterns(n_cpu_moe: int) -> list[str]:
    """llama.cpp's own ``--n-cpu-moe N`` patterns (common/arg.cpp ``llm_add_n_cpu_ffn_overrides``:
    ``llm_ffn_block_regex(i, LLM_FFN_EXPS_REGEX)``), one per block 0..N-1, each to the CPU."""
    return [rf"blk\.{i}\.ffn_(up|down|gate|gate_up)_(ch|)exps" for i in range(n_cpu_moe)]


_BLOCK = re.compile(r"blk\.(\d+)\.")


def gpu_file_spans(
    tensors: Iterable[tuple[str, int, int]], *, n_layer: int, n_gpu_layers: int, n_cpu_moe: int
) -> list[tuple[int, int]]:
    """The byte ranges of a GGUF's data section that hold tensors a run places on the GPU, merged.

    ``tensors``: (name, offset in the data section, bytes), every tensor of the file. On the GPU:
    every tensor of a block from ``gpu_layer_start`` on, except the routed experts of the first
    ``n_cpu_moe`` blocks, and the output layer (``output.weight``, ``output_norm.weight``) once any
    layer is offloaded. Consecutive GPU tensors (in file order, with only alignment padding between
    them) make one range; a tensor kept in host memory (token_embd, experts in RAM, a block in RAM)
    ends it and is never inside a range.
    """
    if n_gpu_layers == 0:
        return []
    start = gpu_layer_start(n_layer, n_gpu_layers)
    experts = [re.compile(p) for p in cpu_moe_patterns(n_cpu_moe)]
    spans: list[tuple[int, int]] = []
    open_span = False
    for name, offset, n_bytes in sorted(tensors, key=lambda t: t[1]):
        m = _BLOCK.match(name)
        if m:
            on_gpu = int(m.group(1)) >= start and not any(p.match(name) for p in experts)
        else:
            on_gpu = name in ("output.weight", "output_norm.weight")
        if not on_gpu:
            open_span = False
        elif open_span:
            spans[-1] = (spans[-1][0], offset + n_bytes)
        else:
            spans.append((offset, offset + n_bytes))
            open_span = True
    return spans
