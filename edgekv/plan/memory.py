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
- compute buffers: measured by llama.cpp's no_alloc dry run where we have it (the catalog and a
  local cache), else :func:`compute_bytes_estimate`, a formula fitted to those measurements.
- CUDA context overhead and a safety margin: settings, not facts of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekv.model.quant import KvType, row_bytes
from edgekv.model.spec import ModelSpec
from edgekv.units import MIB

KV_PAD_CELLS = 256  # llama-context.cpp: cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256)

# Measured on an H200 (driver 580.159, llama-cpp-python 0.3.36, bench/results/vram.jsonl): the
# process holds its buffers plus ~514 MiB of CUDA context from load, and after the first prompt
# 80 MiB more with quantized weights and flash attention (178 MiB with f16/bf16 weights or with
# flash attention off): 594 / 692 MiB in all.
CUDA_CONTEXT_BYTES = 514 * MIB
CUDA_FIRST_PROMPT_BYTES = 80 * MIB
CUDA_FIRST_PROMPT_F16_BYTES = 178 * MIB
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

    def with_ctx(self, n_ctx: int) -> RunConfig:
        # positional construction: several times faster than dataclasses.replace (pick calls it often)
        return RunConfig(
            n_ctx, self.type_k, self.type_v, self.n_seq, self.n_gpu_layers, self.n_ubatch, self.flash_attn,
            self.swa_full, self.kv_unified, self.offload_kqv, self.tensor_split, self.device_sampling,
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
    matrix twice when the output layer is offloaded).
    """

    input_bytes: int
    layer_bytes: tuple[int, ...]
    output_bytes: int
    tied_embeddings: bool = False

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> WeightLayout:
        layers = [0] * spec.n_layer
        inp = out = 0
        for t in spec.tensors:
            il = t.layer
            if il is not None and il < spec.n_layer:
                layers[il] += t.n_bytes
            elif t.name == "token_embd.weight":
                inp += t.n_bytes
                if spec.tied_embeddings:
                    out += t.n_bytes
            else:
                out += t.n_bytes
        return cls(inp, tuple(layers), out, spec.tied_embeddings)

    def split(self, n_gpu_layers: int = -1) -> tuple[int, int]:
        """(GPU bytes, host bytes) with ``n_gpu_layers`` offloaded (-1 = all)."""
        n_layer = len(self.layer_bytes)
        ngl = n_layer + 1 if n_gpu_layers < 0 else n_gpu_layers
        i_gpu_start = max(n_layer + 1 - ngl, 0)
        gpu = sum(self.layer_bytes[i_gpu_start:])
        host = self.input_bytes + sum(self.layer_bytes[:i_gpu_start])
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


def compute_bytes_estimate(spec: ModelSpec, cfg: RunConfig) -> int:
    """Fallback formula for the GPU compute buffer, fitted to dry-run measurements.

    llama.cpp reserves the worst-case graph for n_ubatch tokens. With flash attention the peak
    is the f32 logits plus one hidden state: 4 x n_ub x (n_vocab + n_embd) bytes (exact to the
    MiB for all ten catalog models on the H200). Without flash attention the f32 attention
    scores and mask, 4 x n_ub x cells x (n_head + 1), plus q/k/v and one hidden state, take over
    at long contexts; the larger of the two is reserved. ``bench/results/compute.jsonl`` holds
    the measurements; tests/unit/test_memory.py reports the worst error.
    """
    n_ub = min(cfg.n_ubatch, pad(cfg.n_ctx, KV_PAD_CELLS))
    logits = 4 * n_ub * (spec.n_vocab + spec.n_embd)
    if cfg.flash_attn:
        return logits
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

    @property
    def kv_gpu(self) -> int:
        return self.kv - self.kv_host if self.kv_on_gpu else 0

    @property
    def gpu_total(self) -> int:
        return self.weights_gpu + self.kv_gpu + self.compute + self.overhead + self.margin

    def as_dict(self) -> dict[str, int | str | bool]:
        return {
            "weights": self.weights_gpu,
            "weights_host": self.weights_host,
            "kv": self.kv_gpu,
            "kv_host": self.kv - self.kv_gpu,
            "compute": self.compute,
            "overhead": self.overhead,
            "margin": self.margin,
            "total": self.gpu_total,
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


def cuda_overhead_bytes(*, float_weights: bool, flash_attn: bool = True) -> int:
    """CUDA context + first-prompt workspace, measured on the H200 (see the constants above)."""
    extra = CUDA_FIRST_PROMPT_F16_BYTES if (float_weights or not flash_attn) else CUDA_FIRST_PROMPT_BYTES
    return CUDA_CONTEXT_BYTES + extra


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
) -> Footprint:
    """All terms for one configuration. ``compute_bytes`` None = use the fallback formula;
    ``overhead_bytes`` None = the measured CUDA overhead. ``costs`` = (KV cost of every block,
    of the blocks on the GPU) from ``kv_cost``, a fast path for searches over the context."""
    gpu, host = (layout or WeightLayout.from_spec(spec)).split(cfg.n_gpu_layers)
    start = gpu_layer_start(spec.n_layer, cfg.n_gpu_layers)
    if costs is not None:
        kv = costs[0].total(spec, cfg)
        kv_host = kv - costs[1].total(spec, cfg) if start else 0
    else:
        kv = kv_bytes(spec, cfg).total
        kv_host = kv - kv_bytes(spec, cfg, first_layer=start).total if start else 0
    source = compute_source or ("measured" if compute_bytes is not None else "estimate")
    compute = compute_bytes if compute_bytes is not None else compute_bytes_estimate(spec, cfg)
    compute += sampling_buffer_bytes(spec, cfg)
    if overhead_bytes is None:
        overhead_bytes = cuda_overhead_bytes(float_weights=float_weights(spec), flash_attn=cfg.flash_attn)
    overhead = overhead_bytes
    return Footprint(gpu, host, kv, compute, overhead, margin_bytes, cfg.offload_kqv, source, kv_host)
