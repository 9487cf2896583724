"""The memory model: how many bytes each part of a llama.cpp run takes, before loading.

Pure arithmetic over a ModelSpec (stdlib only), mirroring llama.cpp 0.3.36's vendored source:
- weights: ``llama_model::load_tensors`` puts layer ``il`` on the GPU iff
  ``il >= n_layer + 1 - n_gpu_layers``; the output layer (output.weight, output_norm, or a
  duplicate of token_embd when embeddings are tied) is ``il = n_layer``, so it is the first one
  offloaded (any ``n_gpu_layers >= 1``); the input embedding (token_embd) always stays in host memory.
- KV: ``llama_context`` pads n_ctx to 256; without a unified cache each of n_seq streams holds
  ``pad256(n_ctx / n_seq)`` cells. Sliding-window layers hold
  ``pad256(min(cells, n_swa * (n_seq if unified else 1) + n_ubatch))`` unless ``swa_full``
  (llama_kv_cache_iswa). Each layer stores ``row_size(type, n_head_kv * head_dim)`` per cell.
- compute buffers: run measures its configuration with llama.cpp's no_alloc dry run; otherwise
  :func:`compute_breakdown`: the largest of three moments of the reserved graph, with the KQ mask
  (:func:`kq_mask_bytes`) and CUDA's f16 copies of a quantized K/V (:func:`fa_f16_copy_bytes`)
  growing with the context, and three per-model figures measured once (the catalog) or estimated.
- CUDA context overhead and a safety margin: settings, not facts of the model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from edgekv.model.quant import KvType, row_bytes
from edgekv.model.spec import ModelSpec
from edgekv.model.tensor_groups import EXPS_RE
from edgekv.units import MIB

KV_PAD_CELLS = 256  # llama-context.cpp: cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256)

# Measured on an H200 (driver 580.159, llama-cpp-python 0.3.36, bench/results/vram.jsonl): the
# process holds its buffers plus ~514 MiB of CUDA context from load, and after the first prompt
# 80 MiB more with quantized weights and flash attention (178 MiB with f16/bf16 weights or with
# flash attention off): 594 / 692 MiB in all.
CUDA_CONTEXT_BYTES = 514 * MIB
CUDA_FIRST_PROMPT_BYTES = 80 * MIB
CUDA_FIRST_PROMPT_F16_BYTES = 178 * MIB
# Measured on an H100 (2026-12-06, bench/results/gpu/2026-12-06.md): a mixture-of-experts model holds
# 102-112 MiB more than its buffers and the figures above, with or without experts in RAM (Qwen3-30B-A3B
# at 8/12/16 GiB, gpt-oss-20b at 12/16 GiB), which no dry run shows (likely ggml-cuda's pool for the
# expert matmuls' temporaries); counted at the largest seen.
CUDA_MOE_EXTRA_BYTES = 112 * MIB
# Host memory of a GPU run beyond its buffers, measured on the H100 (2026-12-06, moe_cap.jsonl): RSS
# after 16 generated tokens less RSS after the dry run and less llama.cpp's host buffers and the
# mapped tensors kept in RAM: 137-202 MB on four MoE plans (anonymous: the CUDA runtime's host copies
# of the kernels it loads at first use, ~85 MB; file-backed: those kernels' pages of libggml-cuda,
# 67-126 MB); counted at 200 MiB (209.7 MB) in every GPU plan's host side.
CUDA_HOST_RUNTIME_BYTES = 200 * MIB
DEFAULT_MARGIN_BYTES = 256 * MIB  # headroom for the desktop/driver on a real card; a setting


def pad(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The llama.cpp context settings that decide memory."""

    n_ctx: int
    type_k: KvType = KvType.F16
    type_v: KvType = KvType.F16
    n_seq: int = 1
    n_gpu_layers: int = -1  # -1 = everything, as llama.cpp's -ngl 999
    n_ubatch: int = 512
    flash_attn: bool = True
    swa_full: bool = True  # llama_context_default_params().swa_full
    kv_unified: bool = False
    offload_kqv: bool = True
    # llama_model_params.tensor_split: each device's share of the layers (split_mode LAYER);
    # () = one device (split_mode NONE on a GPU build). See plan/devices.py.
    tensor_split: tuple[float, ...] = ()
    # llama.cpp's backend samplers attached (edgekv --sampler backend|split): see sampling_buffer_bytes
    device_sampling: bool = False
    # mixture of experts: the experts of blocks 0..n_cpu_moe-1 stay in host memory (llama.cpp's
    # --n-cpu-moe N: tensor_buft_overrides "blk\.i\.ffn_(up|down|gate|gate_up)_(ch|)exps" -> CPU)
    n_cpu_moe: int = 0

    def with_ctx(self, n_ctx: int) -> RunConfig:
        # positional construction: several times faster than dataclasses.replace (pick calls it often)
        return RunConfig(
            n_ctx, self.type_k, self.type_v, self.n_seq, self.n_gpu_layers, self.n_ubatch, self.flash_attn,
            self.swa_full, self.kv_unified, self.offload_kqv, self.tensor_split, self.device_sampling,
            self.n_cpu_moe,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class KvBytes:
    """KV cache bytes split the way llama.cpp logs them."""

    k_bytes: int
    v_bytes: int
    cells: int  # cells per stream of the full-attention layers
    swa_cells: int  # cells per stream of the sliding-window layers (0 if none)
    n_stream: int

    @property
    def total(self) -> int:
        return self.k_bytes + self.v_bytes


def kv_cells(n_ctx: int, n_seq: int = 1, *, unified: bool = False) -> tuple[int, int]:
    """(cells per stream, number of streams) for a context, as llama_context sets them up."""
    n_ctx_pad = pad(max(n_ctx, 1), KV_PAD_CELLS)
    if unified or n_seq <= 1:
        return n_ctx_pad, 1
    return pad(n_ctx_pad // n_seq, KV_PAD_CELLS), n_seq


def gpu_layer_start(n_layer: int, n_gpu_layers: int) -> int:
    """First block on the GPU (llama_model::load_tensors: i_gpu_start = n_layer + 1 - ngl)."""
    if n_gpu_layers < 0:
        return 0
    return min(max(n_layer + 1 - n_gpu_layers, 0), n_layer)


def kv_bytes(
    spec: ModelSpec, cfg: RunConfig, *, swa: bool | None = None, first_layer: int = 0, stop_layer: int | None = None
) -> KvBytes:
    """KV cache bytes for a context; ``swa`` restricts to sliding (True) or full (False) layers,
    ``first_layer``/``stop_layer`` to the blocks first..stop-1 (those on the GPU under partial
    offload, or on one device of a layer split)."""
    cells, n_stream = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
    swa_cells = 0
    if spec.swa_layers:
        n_swa_total = spec.n_swa * (cfg.n_seq if cfg.kv_unified else 1)
        swa_cells = cells if cfg.swa_full else pad(min(cells, n_swa_total + cfg.n_ubatch), KV_PAD_CELLS)
    k = v = 0
    for il in range(first_layer, spec.n_layer if stop_layer is None else min(stop_layer, spec.n_layer)):
        if spec.n_head_kv[il] == 0:
            continue
        is_swa = spec.is_swa(il)
        if swa is not None and is_swa != swa:
            continue
        n_cells = swa_cells if is_swa else cells
        k += row_bytes(cfg.type_k.ggml.name, spec.n_embd_k_gqa(il)) * n_cells * n_stream
        v += row_bytes(cfg.type_v.ggml.name, spec.n_embd_v_gqa(il)) * n_cells * n_stream
    return KvBytes(k, v, cells, swa_cells, n_stream)


@dataclass(frozen=True, slots=True)
class KvCost:
    """KV bytes per cell (K + V over layers) split into full-attention and sliding-window layers;
    with it the KV of any context is two multiplications (the chooser's fast path)."""

    full_per_cell: int
    swa_per_cell: int

    def total(self, spec: ModelSpec, cfg: RunConfig) -> int:
        cells, n_stream = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
        swa_cells = 0
        if self.swa_per_cell:
            n_swa_total = spec.n_swa * (cfg.n_seq if cfg.kv_unified else 1)
            swa_cells = cells if cfg.swa_full else pad(min(cells, n_swa_total + cfg.n_ubatch), KV_PAD_CELLS)
        return (self.full_per_cell * cells + self.swa_per_cell * swa_cells) * n_stream


def kv_cost(
    spec: ModelSpec, type_k: KvType, type_v: KvType, *, first_layer: int = 0, stop_layer: int | None = None
) -> KvCost:
    """Per-cell KV bytes of layers ``first_layer..stop_layer-1`` (default: to the last block)."""
    groups: dict[tuple[int, bool], int] = {}
    for il in range(first_layer, spec.n_layer if stop_layer is None else min(stop_layer, spec.n_layer)):
        key = (spec.n_head_kv[il], spec.is_swa(il))
        groups[key] = groups.get(key, 0) + 1
    full = swa = 0
    for (n_kv, is_swa), n_layers in groups.items():
        if n_kv == 0:
            continue
        b = row_bytes(type_k.ggml.name, n_kv * spec.head_dim_k) + row_bytes(type_v.ggml.name, n_kv * spec.head_dim_v)
        if is_swa:
            swa += b * n_layers
        else:
            full += b * n_layers
    return KvCost(full, swa)


def kv_bytes_per_token(spec: ModelSpec, kv_type: KvType) -> int:
    """Bytes per token of context over the full-attention layers (K + V), as the paper counts it."""
    total = 0
    for il in range(spec.n_layer):
        if spec.n_head_kv[il] and not spec.is_swa(il):
            total += row_bytes(kv_type.ggml.name, spec.n_embd_k_gqa(il))
            total += row_bytes(kv_type.ggml.name, spec.n_embd_v_gqa(il))
    return total


@dataclass(frozen=True, slots=True)
class WeightLayout:
    """Weight bytes by where llama.cpp places them: input layer, each block, output layer.

    ``output_bytes`` is what the output layer puts on its device: output.weight + output_norm,
    or for tied embeddings output_norm + a duplicate of token_embd (llama.cpp loads the tied
    matrix twice when the output layer is offloaded). ``expert_bytes``: a mixture of experts'
    routed-expert bytes of each block (part of ``layer_bytes``; ``tensor_groups.expert_layer_bytes``),
    what ``--n-cpu-moe`` moves; () for a dense model.
    """

    input_bytes: int
    layer_bytes: tuple[int, ...]
    output_bytes: int
    tied_embeddings: bool = False
    expert_bytes: tuple[int, ...] = ()

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> WeightLayout:
        layers = [0] * spec.n_layer
        experts = [0] * spec.n_layer
        inp = out = 0
        for t in spec.tensors:
            il = t.layer
            if il is not None and il < spec.n_layer:
                layers[il] += t.n_bytes
                if EXPS_RE.search(t.name):
                    experts[il] += t.n_bytes
            elif t.name == "token_embd.weight":
                inp += t.n_bytes
                if spec.tied_embeddings:
                    out += t.n_bytes
            else:
                out += t.n_bytes
        return cls(inp, tuple(layers), out, spec.tied_embeddings, tuple(experts) if any(experts) else ())

    def host_experts(self, n_gpu_layers: int = -1, n_cpu_moe: int = 0) -> int:
        """Expert bytes that ``n_cpu_moe`` keeps in host memory out of the blocks on the GPU."""
        if not n_cpu_moe or not self.expert_bytes:
            return 0
        start = gpu_layer_start(len(self.layer_bytes), n_gpu_layers)
        return sum(self.expert_bytes[start : max(start, n_cpu_moe)])

    def split(self, n_gpu_layers: int = -1, n_cpu_moe: int = 0) -> tuple[int, int]:
        """(GPU bytes, host bytes) with ``n_gpu_layers`` offloaded (-1 = all) and the experts of the
        first ``n_cpu_moe`` blocks in host memory."""
        n_layer = len(self.layer_bytes)
        ngl = n_layer + 1 if n_gpu_layers < 0 else n_gpu_layers
        i_gpu_start = max(n_layer + 1 - ngl, 0)
        moved = self.host_experts(n_gpu_layers, n_cpu_moe)
        gpu = sum(self.layer_bytes[i_gpu_start:]) - moved
        host = self.input_bytes + sum(self.layer_bytes[:i_gpu_start]) + moved
        if ngl > 0:  # the output layer is il = n_layer: offloaded first (llama-model.cpp load_tensors)
            gpu += self.output_bytes
        elif self.tied_embeddings:
            host += self.output_bytes - self.input_bytes  # the CPU output reuses token_embd
        else:
            host += self.output_bytes
        return gpu, host


def weight_bytes_split(spec: ModelSpec, n_gpu_layers: int = -1) -> tuple[int, int]:
    """(GPU bytes, host bytes) of a spec's weights with ``n_gpu_layers`` offloaded."""
    return WeightLayout.from_spec(spec).split(n_gpu_layers)


def reserve_tokens(cfg: RunConfig) -> int:
    """Tokens in the graph llama.cpp reserves its compute buffer for.

    ``llama_context::sched_reserve``: ``n_tokens = min(n_ctx, n_ubatch)`` (n_ctx as padded:
    ``n_ctx_seq * n_seq``), then ``graph_reserve`` rounds it up to a multiple of ``n_seq`` (each of
    the n_seq sequences gets ``n_tokens / n_seq`` rows): 513 at G = 3, 516 at G = 6, 518 at G = 7.
    """
    cells, n_stream = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
    g = max(cfg.n_seq, 1)
    return pad(min(cells * n_stream, cfg.n_ubatch), g)


def _attn_cells(spec: ModelSpec, cfg: RunConfig) -> list[int]:
    """Cells per stream of each KV cache the graph attends over: the full-attention one, and the
    sliding-window one when the model has both kinds of layer (llama_kv_cache_iswa)."""
    cells, _ = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
    if not spec.swa_layers or not any(spec.swa_layers):
        return [cells]
    swa = kv_bytes(spec, cfg).swa_cells
    return [cells, swa] if not all(spec.swa_layers) else [swa]


def kq_mask_bytes(spec: ModelSpec, cfg: RunConfig) -> int:
    """The KQ mask of the reserved graph: F16 with flash attention (F32 without), one per KV cache.

    ``build_attn_inp_kq_mask`` (src/llama-graph.cpp) makes it ``[n_kv, n_tokens / n_stream, 1,
    n_stream]`` with ``n_kv`` the cells of one stream (the full cache at reserve time:
    ``llama_kv_cache_context`` takes ``n_kv = get_size()``) and ``n_stream`` = G without a unified
    cache, 1 with one. So it holds ``cells_per_stream x n_tokens`` entries: without a unified cache
    G streams of ``n_ctx / G`` cells give ``n_ctx / G x n_tokens``, G times less than one stream of
    the same total context (each sequence is masked against its own cells only). It is an input:
    allocated first and alive from the first layer's attention to the last one's, so it adds to
    every moment inside the layers. On a GPU the scheduler copies it from host memory into the
    GPU's compute buffer, same size.
    """
    elt = 2 if cfg.flash_attn else 4
    n_tok = reserve_tokens(cfg)
    return sum(elt * c * n_tok for c in _attn_cells(spec, cfg))


def fa_f16_copy_bytes(spec: ModelSpec, cfg: RunConfig, *, backend: str = "cuda") -> int:
    """The f16 copies of a quantized K/V that CUDA's flash attention keeps in the compute buffer.

    ggml-cuda's ``get_alloc_size`` of a FLASH_ATTN_EXT node (``ggml_cuda_flash_attn_ext_get_alloc_size``,
    ggml-cuda/fattn.cu) asks for the node's output plus, when the chosen kernel is the tensor-core
    (MMA) or tile kernel, an f16 copy of K if K is not f16 and of V if V is not f16 (each after a
    128-byte pad; ``ggml_cuda_flash_attn_ext_get_f16_extra_data``). K and V are views of the whole
    cache: ``[head_dim, n_head_kv, n_kv, n_stream]`` (``llama_kv_cache::get_k``/``get_v``), so the
    copies hold ``n_embd_gqa x cells_per_stream x n_stream`` elements each: the layer's whole cache
    at 2 bytes an element, whatever G is (n_stream x cells per stream is the total context). That
    is why the slope in the context does not fall with G the way the mask's does. The node's
    buffer lives from the attention to the output projection, one layer at a time, so the largest
    layer counts. The vector kernel (decode: 1 query row per stream; on Ada and newer also 2)
    converts nothing; the reserved graph has ``n_ubatch / G`` rows per stream, so the copies count
    unless that is 1 (at 2 they are counted: the safe side). The CPU backend converts rows in its
    work buffer: 0 there.
    """
    qk, qv = cfg.type_k.quantized, cfg.type_v.quantized
    if backend != "cuda" or not cfg.flash_attn or not (qk or qv):
        return 0
    _, n_stream = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
    if reserve_tokens(cfg) // n_stream <= 1:
        return 0
    cells = _attn_cells(spec, cfg)
    heads_full, heads_swa = _max_kv_heads(spec.n_head_kv, spec.swa_layers)
    per_head = 2 * (spec.head_dim_k * qk + spec.head_dim_v * qv) * n_stream  # cells are whole 256s: no pad
    return per_head * max(heads_full * cells[0], heads_swa * cells[-1])


@functools.lru_cache(maxsize=64)
def _max_kv_heads(n_head_kv: tuple[int, ...], swa_layers: tuple[bool, ...]) -> tuple[int, int]:
    """The most KV heads of a full-attention layer and of a sliding-window layer."""
    full = max((h for il, h in enumerate(n_head_kv) if not (swa_layers and swa_layers[il])), default=0)
    swa = max((h for il, h in enumerate(n_head_kv) if swa_layers and swa_layers[il]), default=0)
    return full, swa


@dataclass(frozen=True, slots=True)
class ComputeFigures:
    """The parts of a model's compute buffer that do not depend on the context, in bytes at
    ``n_ubatch`` reserved tokens (G = 1), measured with llama.cpp's dry run per backend.

    llama.cpp's compute buffer is the high-water mark of ggml-alloc's allocator over the worst-case
    graph; three moments of that graph can be the highest, and :func:`compute_breakdown` takes the
    largest of them:

    - ``out``: the output layer, after the last attention has freed the KQ mask: the f32 logits
      (``4 x n_vocab x n_outputs``) beside the last hidden states. Independent of the context.
    - ``layer``: the largest moment inside a layer (the feed-forward's f32 activations), beside
      the KQ mask (:func:`kq_mask_bytes`) that every layer's attention reads.
    - ``attn``: the flash-attention node of a layer with a quantized K or V, beside the mask and
      the node's f16 copies of K and V (:func:`fa_f16_copy_bytes`); its own output and the query
      and residual alive at that moment are in the figure.

    The figures scale with the reserved tokens (:func:`reserve_tokens`); the logits rows do not
    (``n_outputs`` stays n_ubatch when the tokens are rounded up to a multiple of G).
    """

    out: int
    layer: int
    attn: int
    n_ubatch: int = 512
    source: str = "catalog"  # "catalog" (measured) or "estimate" (ComputeFigures.estimate)

    @classmethod
    def estimate(cls, spec: ModelSpec, n_ubatch: int = 512) -> ComputeFigures:
        """Figures from the shapes alone, for a model nobody measured (see the constants' comments)."""
        n = n_ubatch
        q_dim = spec.n_head * spec.head_dim_k
        out = 4 * n * (spec.n_vocab + spec.n_embd)
        layer = 4 * n * (3 * spec.n_ff + 3 * spec.n_embd + max(spec.n_embd, q_dim)) + ESTIMATE_PAD_BYTES
        attn = 4 * n * (2 * spec.n_embd + 2 * q_dim) + ESTIMATE_PAD_BYTES
        return cls(out, layer, attn, n_ubatch, "estimate")

    @staticmethod
    def calibration_configs(spec: ModelSpec, n_ubatch: int = 512) -> dict[str, RunConfig]:
        """Where each figure is the buffer's high-water mark, so one dry run measures it: the
        output at n_ubatch tokens of context (a mask of 512 KiB; for a model whose layers outweigh its
        logits this bounds the output moment from above), the layer with a 1M-token f16 context
        (mask 1 GiB), the attention with a 1M-token q8_0 context (mask 1 GiB, f16 copies of at
        least 1 GiB on CUDA)."""
        big = CALIBRATION_CTX
        return {
            "out": RunConfig(n_ctx=n_ubatch, n_ubatch=n_ubatch),
            "layer": RunConfig(n_ctx=big, n_ubatch=n_ubatch),
            "attn": RunConfig(n_ctx=big, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_ubatch=n_ubatch),
        }

    @classmethod
    def from_calibration(
        cls, spec: ModelSpec, measured: dict[str, int], *, backend: str = "cuda", n_ubatch: int = 512
    ) -> ComputeFigures:
        """The figures from the buffers measured at :meth:`calibration_configs`."""
        cfgs = cls.calibration_configs(spec, n_ubatch)
        layer = measured["layer"] - kq_mask_bytes(spec, cfgs["layer"])
        attn_cfg = cfgs["attn"]
        attn = measured["attn"] - kq_mask_bytes(spec, attn_cfg) - fa_f16_copy_bytes(spec, attn_cfg, backend=backend)
        return cls(measured["out"], layer, attn, n_ubatch, "catalog")

    @classmethod
    def from_keys(cls, table: dict[str, int], *, backend: str = "cuda", n_ubatch: int = 512) -> ComputeFigures | None:
        """The figures stored under :func:`figure_keys`' keys, or None when any is missing."""
        base = f"{backend}/ub{n_ubatch}/fa1"
        try:
            return cls(table[f"{base}/out"], table[f"{base}/layer"], table[f"{base}/attn"], n_ubatch, "catalog")
        except KeyError:
            return None


# A 1M-token context: the KQ mask alone (1 GiB at n_ubatch 512) outweighs any output layer.
CALIBRATION_CTX = 1 << 20
# ComputeFigures.estimate pads its layer and attention figures (small inputs, alignment) by this much:
# the measured ATTN of all ten catalog models is 4 x n_ub x (2 n_embd + 2 q_dim) + 0.09 MiB, their
# LAYER 4-10 MiB under the estimate's (bench/results/compute_grid/figures_measured.json).
ESTIMATE_PAD_BYTES = 4 * MIB
# What pick and run add to the largest moment (compute_breakdown's "slack"). Measured figures: the
# largest moment was -0.005..+40.3 MiB from llama.cpp's CUDA reserve over 3,293 dry runs (H100 grid,
# H200 sweep: bench/results/compute_grid, tests/plan/test_compute_grid.py), so with 2 MiB pick and
# run never count less than llama.cpp reserves. Estimated figures: -39.8..+14.0 MiB there
# (ggml-alloc placed one model's logits 37-40 MiB higher at some mask sizes, which no arithmetic of
# the tensors gives), so 48 MiB.
MEASURED_SLACK_BYTES = 2 * MIB
ESTIMATE_SLACK_BYTES = 48 * MIB


def figure_keys(figs: ComputeFigures, *, backend: str = "cuda") -> dict[str, int]:
    """The catalog keys of the figures (models/*.json "compute"): each depends on the llama.cpp
    build's backend, n_ubatch and flash attention, and on nothing else of the run (not the
    context, G, KV type or weight quant: they enter through kq_mask_bytes and fa_f16_copy_bytes)."""
    base = f"{backend}/ub{figs.n_ubatch}/fa1"
    return {f"{base}/out": figs.out, f"{base}/layer": figs.layer, f"{base}/attn": figs.attn}


def _scaled(n_bytes: int, n_tok: int, n_ubatch: int) -> int:
    return -(-n_bytes * n_tok // n_ubatch)


def compute_breakdown(
    spec: ModelSpec, cfg: RunConfig, figures: ComputeFigures | None = None, *, backend: str = "cuda"
) -> dict[str, int | str]:
    """The compute buffer by moment: ``out``, ``layer``, ``attn`` (bytes), ``exact`` (the largest),
    ``phase`` (its name), ``slack`` and ``compute`` = exact + slack (what pick and run count).

    With flash attention::

        n_tok  = reserve_tokens(cfg)                   # n_ubatch rounded up to a multiple of G
        mask   = kq_mask_bytes(spec, cfg)              # 2 x cells_per_stream x n_tok (per KV cache)
        copies = fa_f16_copy_bytes(spec, cfg)          # 2 x n_embd_gqa x cells x n_stream, K and V
                                                       #   each if quantized (CUDA only)
        out    = logits + (figures.out - logits) x n_tok / n_ubatch,  logits = 4 x n_vocab x n_ubatch
        layer  = figures.layer x n_tok / n_ubatch + mask
        attn   = figures.attn x n_tok / n_ubatch + mask + copies      (only when copies > 0)
        exact  = max(out, layer, attn)

    ``figures`` None = :meth:`ComputeFigures.estimate`. Without flash attention the f32 scores of
    a whole stream dominate instead (``_no_flash_attn_bytes``), a fitted formula.
    """
    figs = figures if figures is not None and figures.n_ubatch == cfg.n_ubatch else None
    figs = figs or ComputeFigures.estimate(spec, cfg.n_ubatch)
    slack = MEASURED_SLACK_BYTES if figs.source == "catalog" else ESTIMATE_SLACK_BYTES
    if not cfg.flash_attn:
        exact = _no_flash_attn_bytes(spec, cfg)
        return {"out": exact, "layer": 0, "attn": 0, "exact": exact, "phase": "scores", "slack": slack,
                "compute": exact + slack}  # fmt: skip
    n_tok = reserve_tokens(cfg)
    n_ub = figs.n_ubatch
    logits = 4 * spec.n_vocab * min(n_tok, n_ub)
    mask = kq_mask_bytes(spec, cfg)
    copies = fa_f16_copy_bytes(spec, cfg, backend=backend)
    out = logits + _scaled(max(figs.out - 4 * spec.n_vocab * n_ub, 0), n_tok, n_ub)
    layer = _scaled(figs.layer, n_tok, n_ub) + mask
    attn = _scaled(figs.attn, n_tok, n_ub) + mask + copies if copies else 0
    exact, phase = max((out, "out"), (layer, "layer"), (attn, "attn"))
    return {"out": out, "layer": layer, "attn": attn, "exact": exact, "phase": phase, "slack": slack,
            "compute": exact + slack}  # fmt: skip


def compute_bytes_term(
    spec: ModelSpec, cfg: RunConfig, figures: ComputeFigures | None = None, *, backend: str = "cuda"
) -> int:
    """The compute buffer pick and run count for ``cfg`` (without a dry run of it):
    :func:`compute_breakdown`'s ``compute``, the largest moment plus the slack."""
    return int(compute_breakdown(spec, cfg, figures, backend=backend)["compute"])


def _no_flash_attn_bytes(spec: ModelSpec, cfg: RunConfig) -> int:
    """Without flash attention: the f32 attention scores and mask, 4 x n_ub x cells x (n_head + 1),
    plus q/k/v and one hidden state take over at long contexts (fitted to H200 dry runs,
    bench/results/compute.jsonl); below that the logits and a hidden state."""
    n_ub = min(cfg.n_ubatch, pad(cfg.n_ctx, KV_PAD_CELLS))
    logits = 4 * n_ub * (spec.n_vocab + spec.n_embd)
    cells, _ = kv_cells(cfg.n_ctx, cfg.n_seq, unified=cfg.kv_unified)
    attn = 4 * n_ub * (cells * (spec.n_head + 1) + 3 * spec.n_head * spec.head_dim_k + spec.n_embd)
    return max(logits, attn)


@dataclass(frozen=True, slots=True)
class Footprint:
    """Every term of a run's memory, in bytes. ``gpu_total`` is what must fit the card."""

    weights_gpu: int
    weights_host: int
    kv: int
    compute: int
    overhead: int
    margin: int
    kv_on_gpu: bool = True
    compute_source: str = "estimate"  # "measured" (dry run / catalog) or "estimate" (formula)
    kv_host: int = 0  # the part of ``kv`` of blocks left on the CPU (partial offload)
    # experts in host memory (n_cpu_moe): an estimate, not measured yet (docs/memory.md)
    expert_copy: int = 0  # GPU: one block's host experts copied in for a prompt batch (op offload)
    host_buffers: int = 0  # host: llama.cpp's host-side buffers (host_buffer_bytes)
    host_runtime: int = 0  # host: the CUDA runtime's own host memory (CUDA_HOST_RUNTIME_BYTES)

    @property
    def kv_gpu(self) -> int:
        return self.kv - self.kv_host if self.kv_on_gpu else 0

    @property
    def gpu_total(self) -> int:
        return self.weights_gpu + self.kv_gpu + self.compute + self.expert_copy + self.overhead + self.margin

    @property
    def host_total(self) -> int:
        """What must fit in system RAM: host weights, host KV, the host-side buffers and the GPU
        runtime's host memory."""
        return self.weights_host + (self.kv - self.kv_gpu) + self.host_buffers + self.host_runtime

    def as_dict(self) -> dict[str, int | str | bool]:
        return {
            "weights": self.weights_gpu,
            "weights_host": self.weights_host,
            "kv": self.kv_gpu,
            "kv_host": self.kv - self.kv_gpu,
            "compute": self.compute,
            "expert_copy": self.expert_copy,
            "overhead": self.overhead,
            "margin": self.margin,
            "total": self.gpu_total,
            "host_buffers": self.host_buffers,
            "host_runtime": self.host_runtime,
            "host_total": self.host_total,
            "compute_source": self.compute_source,
        }


def sampling_buffer_bytes(spec: ModelSpec, cfg: RunConfig) -> int:
    """What llama.cpp's backend sampling adds to the compute buffer (0 without it).

    With samplers attached, llama.cpp's worst-case graph (n_ubatch tokens, each an output) pads a
    copy of the logits by one row (``ggml_pad`` of ``t_logits`` in ``build_sampling``):
    4 x (n_ubatch + 1) x n_vocab bytes, 297 MiB at Qwen3's 152k vocabulary. Measured: gemma-3's
    262k, 514.50 -> 1027.50 MiB on the CPU (llama.cpp's log, tested); Qwen3 shapes on the H200,
    NVML +308 to +326 MiB over a prediction without it where the host sampler measured +10 to +12.
    """
    if not cfg.device_sampling:
        return 0
    return 4 * (min(cfg.n_ubatch, cfg.n_ctx) + 1) * spec.n_vocab


def host_buffer_bytes(spec: ModelSpec, cfg: RunConfig) -> int:
    """llama.cpp's host-side buffers of a GPU run (an estimate: not measured on a GPU yet).

    * the output buffer: f32 logits of one output per sequence, ``4 x n_vocab x n_seq``
      (``llama_context::output_reserve(n_seq_max)``);
    * the host compute buffer (``CUDA_Host``): the graph's host inputs, the embedded batch
      ``4 x n_embd x n_tokens`` (token_embd is in host memory) and the KQ mask;
    * with experts in host memory (``n_cpu_moe``) the CPU backend's compute buffer for the expert
      matmuls it runs: ``4 x n_tokens x (n_embd + n_expert_used x (2 n_ff_exp + n_embd))`` (their
      inputs and f32 outputs, as if a whole batch ran there: the safe side; llama.cpp offloads a
      large batch's expert matmuls to the GPU, ``expert_copy_bytes``).
    """
    n_tok = reserve_tokens(cfg)
    out = 4 * spec.n_vocab * max(cfg.n_seq, 1)
    inputs = 4 * spec.n_embd * n_tok + kq_mask_bytes(spec, cfg)
    experts = 0
    if cfg.n_cpu_moe and spec.is_moe:
        experts = 4 * n_tok * (spec.n_embd + spec.n_expert_used * (2 * spec.n_ff_exp + spec.n_embd))
    return out + inputs + experts


def expert_copy_bytes(layout: WeightLayout, cfg: RunConfig) -> int:
    """GPU bytes for host experts that a prompt batch copies to the GPU (an estimate).

    llama.cpp's scheduler runs a matmul whose weights are in host memory on the GPU when the batch
    has 32 tokens or more (``op_offload``, on by default; the CUDA backend's ``offload_op``),
    copying the weights into the GPU's compute buffer as a split input: one block's experts at a
    time, so the largest host block's experts count once (ggml-backend.cpp, cause "1.off"). Experts
    that llama.cpp repacks (a CPU_REPACK buffer, not host-addressable: its ``is_host`` is unset) are
    never offloaded that way and nothing is copied: for them the term is the safe side."""
    if not cfg.n_cpu_moe or not layout.expert_bytes:
        return 0
    start = gpu_layer_start(len(layout.layer_bytes), cfg.n_gpu_layers)
    return max(layout.expert_bytes[start : max(start, cfg.n_cpu_moe)], default=0)


def cuda_overhead_bytes(*, float_weights: bool, flash_attn: bool = True, moe: bool = False) -> int:
    """CUDA context + first-prompt workspace, measured on the H200 (see the constants above), and the
    H100's measured extra for a mixture-of-experts model."""
    extra = CUDA_FIRST_PROMPT_F16_BYTES if (float_weights or not flash_attn) else CUDA_FIRST_PROMPT_BYTES
    return CUDA_CONTEXT_BYTES + extra + (CUDA_MOE_EXTRA_BYTES if moe else 0)


def float_weights(spec: ModelSpec) -> bool:
    """True when most weight bytes are f16/bf16/f32 (from the tensors, else the file type)."""
    if not spec.tensors:
        return spec.file_type in ("F16", "BF16", "F32")
    return next(iter(spec.tensor_type_bytes())) in ("F16", "BF16", "F32")


def footprint(
    spec: ModelSpec,
    cfg: RunConfig,
    *,
    layout: WeightLayout | None = None,
    compute_bytes: int | None = None,
    compute_source: str | None = None,
    overhead_bytes: int | None = None,
    margin_bytes: int = DEFAULT_MARGIN_BYTES,
    costs: tuple[KvCost, KvCost] | None = None,
    figures: ComputeFigures | None = None,
) -> Footprint:
    """All terms for one configuration: the one footprint pick and run both count.

    ``compute_bytes`` is a buffer measured for exactly ``cfg`` (run's dry run); None = the term
    (:func:`compute_bytes_term`) at ``cfg`` with ``figures`` (the catalog's measured figures; None =
    estimated from the shapes). ``overhead_bytes`` None = the measured CUDA overhead. ``costs`` =
    (KV cost of every block, of the blocks on the GPU) from ``kv_cost``, a fast path for searches
    over the context."""
    lay = layout or WeightLayout.from_spec(spec)
    gpu, host = lay.split(cfg.n_gpu_layers, cfg.n_cpu_moe)
    start = gpu_layer_start(spec.n_layer, cfg.n_gpu_layers)
    if costs is not None:
        kv = costs[0].total(spec, cfg)
        kv_host = kv - costs[1].total(spec, cfg) if start else 0
    else:
        kv = kv_bytes(spec, cfg).total
        kv_host = kv - kv_bytes(spec, cfg, first_layer=start).total if start else 0
    if compute_bytes is not None:
        compute, source = compute_bytes, compute_source or "measured"
    else:
        figs = figures if figures is not None and cfg.flash_attn else None
        compute = compute_bytes_term(spec, cfg, figs)
        source = compute_source or (figs.source if figs is not None else "estimate")
    compute += sampling_buffer_bytes(spec, cfg)
    if overhead_bytes is None:
        overhead_bytes = cuda_overhead_bytes(float_weights=float_weights(spec), flash_attn=cfg.flash_attn,
                                             moe=spec.is_moe)  # fmt: skip
    overhead = overhead_bytes
    return Footprint(
        gpu, host, kv, compute, overhead, margin_bytes, cfg.offload_kqv, source, kv_host,
        0 if compute_bytes is not None else expert_copy_bytes(lay, cfg),  # a measured buffer holds the copies
        host_buffer_bytes(spec, cfg), CUDA_HOST_RUNTIME_BYTES if overhead else 0,
    )  # fmt: skip
