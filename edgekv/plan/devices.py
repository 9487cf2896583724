"""More than one device: llama.cpp's layer split (split_mode LAYER) and its memory per device.

Pure arithmetic (stdlib only), mirroring llama.cpp 0.3.36's vendored source:
- ``llama_model::load_tensors`` (src/llama-model.cpp): the split points are ``tensor_split``
  (or, when it is all zeros, each device's free memory), summed cumulatively and normalised, in
  float32. With ``i_gpu_start = max(n_layer + 1 - ngl, 0)`` and ``act_gpu_layers =
  min(ngl, n_layer + 1)``, layer ``il`` goes to device ``upper_bound(splits, float(il -
  i_gpu_start) / act_gpu_layers)``: the first device whose cumulative share is *greater* than
  the layer's position. The output layer is ``il = n_layer`` (``dev_output =
  get_layer_buft_list(n_layer)``), so with full offload it sits on the last device with a share;
  the input layer (token_embd) stays on the CPU.
- llama_kv_cache (src/llama-kv-cache.cpp): each layer's K and V are allocated on
  ``model.dev_layer(il)`` when ``offload_kqv``: the KV of a device is the KV of its layers.
- llama_context (src/llama-context.cpp): the scheduler reserves one compute buffer per backend.
  With more than one device, every layer offloaded, split mode LAYER and offload_kqv, it enables
  pipeline parallelism: ``GGML_SCHED_MAX_COPIES`` (4) copies of each split's inputs (the hidden
  state and the KQ mask copied in from the previous device). If that reservation fails it
  retries without pipeline parallelism. Each device also holds its own CUDA context.
- src/llama.cpp: with no explicit device list the model's devices are RPC servers first (in
  ``--rpc`` order), then local GPUs; ``tensor_split`` indexes that list.

The per-device compute buffer has no closed form; ``device_compute_estimate`` is a first guess
(the output device carries the logits, every device the pipeline copies of its inputs) that the
GPU benchmark (bench/gpu_multi.py) checks against llama.cpp's dry run; ``edgekv run`` measures
each device's buffer with that dry run instead.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edgekv.errors import SpecError
from edgekv.model.spec import ModelSpec
from edgekv.plan.fit import context_cap, largest_fitting_steps
from edgekv.plan.memory import (
    CUDA_HOST_RUNTIME_BYTES,
    DEFAULT_MARGIN_BYTES,
    KV_PAD_CELLS,
    ComputeFigures,
    Footprint,
    KvCost,
    RunConfig,
    WeightLayout,
    compute_breakdown,
    cuda_overhead_bytes,
    float_weights,
    kq_mask_bytes,
    kv_cost,
    reserve_tokens,
)
from edgekv.units import GIB, format_bytes

PIPELINE_COPIES = 4  # ggml-backend.cpp: GGML_SCHED_MAX_COPIES, the copies pipeline parallelism keeps


@dataclass(frozen=True, slots=True)
class DeviceBudget:
    """One device of a split: its memory cap and a name for messages ("GPU 1", "RPC0 host:port")."""

    vram_bytes: int
    name: str = ""


def devices_from_caps(caps: Sequence[int], names: Sequence[str] | None = None) -> tuple[DeviceBudget, ...]:
    """``DeviceBudget``s for caps in device order, named "GPU 0", "GPU 1", ... unless named."""
    return tuple(DeviceBudget(c, names[i] if names else f"GPU {i}") for i, c in enumerate(caps))


def default_split(devices: Sequence[DeviceBudget]) -> tuple[float, ...]:
    """tensor_split proportional to each device's memory (llama.cpp's own default uses free memory),
    in GiB to three decimals, so ``-ts`` reads naturally (12G,8G -> 12,8)."""
    return tuple(round(d.vram_bytes / GIB, 3) for d in devices)


def check_split(tensor_split: Sequence[float], n_devices: int) -> tuple[float, ...]:
    """A tensor_split with one non-negative share per device and a positive sum."""
    split = tuple(float(x) for x in tensor_split)
    if len(split) != n_devices:
        raise SpecError(f"--tensor-split has {len(split)} shares for {n_devices} devices", hint="give one per --vram")
    if any(x < 0 for x in split) or sum(split) <= 0:
        raise SpecError(f"--tensor-split {','.join(f'{x:g}' for x in split)}: shares must be >= 0, not all 0")
    return split


def _f32(x: float) -> float:
    """Round to float32, as llama.cpp's ``std::vector<float> splits`` and ``float(il)/n`` do."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def split_points(tensor_split: Sequence[float]) -> tuple[float, ...]:
    """llama.cpp's cumulative, normalised split points (float32), one per device; the last is 1."""
    total = 0.0
    cum = []
    for x in tensor_split:
        total = _f32(total + _f32(x))
        cum.append(total)
    return tuple(_f32(c / total) for c in cum)


def split_layers(n_layer: int, tensor_split: Sequence[float], *, n_gpu_layers: int = -1) -> tuple[range, ...]:
    """Per device, the layers ``il`` it holds, 0..n_layer where ``il = n_layer`` is the output layer.

    Layers below ``n_layer + 1 - n_gpu_layers`` stay on the CPU and are in no range.
    """
    points = split_points(check_split(tensor_split, len(tensor_split)))
    ngl = n_layer + 1 if n_gpu_layers < 0 else n_gpu_layers
    i_gpu_start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    owner = [
        min(bisect.bisect_right(points, _f32((il - i_gpu_start) / act)), len(points) - 1)
        for il in range(i_gpu_start, n_layer + 1)
    ]
    out = []
    for d in range(len(points)):
        mine = [i_gpu_start + i for i, o in enumerate(owner) if o == d]
        out.append(range(mine[0], mine[-1] + 1) if mine else range(0))
    return tuple(out)


def output_device(ranges: Sequence[range], n_layer: int) -> int | None:
    """The device holding the output layer (None: it stayed on the CPU)."""
    return next((d for d, r in enumerate(ranges) if n_layer in r), None)


def pipeline_parallel(n_devices: int, n_layer: int, cfg: RunConfig) -> bool:
    """llama-context.cpp's condition: several devices, every layer offloaded, KV offloaded."""
    ngl = n_layer + 1 if cfg.n_gpu_layers < 0 else cfg.n_gpu_layers
    return n_devices > 1 and ngl > n_layer and cfg.offload_kqv


def device_compute_estimate(
    spec: ModelSpec, cfg: RunConfig, *, holds_output: bool, pipeline: bool, figures: ComputeFigures | None = None
) -> int:
    """A first guess at one device's compute buffer (see the module docstring; not yet measured).

    Every device runs attention for its layers, so each holds the KQ mask and, with a quantized
    K/V, the flash-attention f16 copies (``memory.compute_breakdown``'s layer and attention
    moments, from the model's ``figures`` or the estimate); the output device also the output
    moment (the logits). Pipeline parallelism adds PIPELINE_COPIES - 1 copies of the inputs: the
    hidden state and the KQ mask.
    """
    parts = compute_breakdown(spec, cfg, figures)
    slack = int(parts["slack"])
    if holds_output:
        base = int(parts["exact"]) + slack
    else:
        base = max(int(parts["layer"]), int(parts["attn"])) + slack
    if not pipeline:
        return base
    hidden = 4 * reserve_tokens(cfg) * spec.n_embd
    return base + (PIPELINE_COPIES - 1) * (hidden + kq_mask_bytes(spec, cfg))


@dataclass(frozen=True, slots=True)
class DeviceTerms:
    """What the per-device footprint needs besides T (the multi-device ``fit.FitTerms``)."""

    tensor_split: tuple[float, ...]
    layout: WeightLayout | None = None  # None = from the spec's tensors
    compute_bytes: tuple[int, ...] | None = None  # per device, measured (dry run); None = estimate
    figures: ComputeFigures | None = None  # the model's measured compute figures, for the estimate
    overhead_bytes: int | None = None  # per device; None = the measured CUDA overhead
    margin_bytes: int = DEFAULT_MARGIN_BYTES  # per device
    include_compute: bool = True


def _device_costs(spec: ModelSpec, cfg: RunConfig, ranges: Sequence[range]) -> list[KvCost]:
    return [kv_cost(spec, cfg.type_k, cfg.type_v, first_layer=r.start, stop_layer=r.stop) for r in ranges]


def multi_footprint(
    spec: ModelSpec, cfg: RunConfig, terms: DeviceTerms, *, costs: Sequence[KvCost] | None = None
) -> list[Footprint]:
    """One Footprint per device of ``terms.tensor_split``: the weights and KV of its layers, its
    compute buffer, its CUDA overhead and margin. Host bytes (the input layer, CPU layers and
    their KV) are left out: ``combined`` adds them to the total."""
    layout = terms.layout or WeightLayout.from_spec(spec)
    n_layer = spec.n_layer
    ranges = split_layers(n_layer, terms.tensor_split, n_gpu_layers=cfg.n_gpu_layers)
    out_dev = output_device(ranges, n_layer)
    pipeline = pipeline_parallel(len(ranges), n_layer, cfg)
    costs = costs if costs is not None else _device_costs(spec, cfg, ranges)
    if terms.overhead_bytes is not None:
        overhead = terms.overhead_bytes
    else:
        overhead = cuda_overhead_bytes(float_weights=float_weights(spec), flash_attn=cfg.flash_attn,
                                       moe=spec.is_moe)  # fmt: skip
    fps = []
    for d, r in enumerate(ranges):
        weights = sum(layout.layer_bytes[il] for il in r if il < n_layer)
        weights += layout.output_bytes if d == out_dev else 0
        kv = costs[d].total(spec, cfg)
        if not terms.include_compute:
            compute, source = 0, "not counted"
        elif terms.compute_bytes is not None:
            compute, source = terms.compute_bytes[d], "measured"
        else:
            compute = device_compute_estimate(
                spec, cfg, holds_output=d == out_dev, pipeline=pipeline, figures=terms.figures
            )
            source = "estimate"
        fps.append(Footprint(weights, 0, kv, compute, overhead, terms.margin_bytes, cfg.offload_kqv, source))
    return fps


def combined(fps: Sequence[Footprint], *, layout: WeightLayout, kv_total: int | None = None) -> Footprint:
    """The devices' footprints summed into one (what a single-device view shows), with the host
    weights of ``layout`` (the input layer; CPU layers are not planned across devices)."""
    kv = sum(f.kv for f in fps)
    return Footprint(
        sum(f.weights_gpu for f in fps), layout.input_bytes, kv if kv_total is None else kv_total,
        sum(f.compute for f in fps), sum(f.overhead for f in fps), sum(f.margin for f in fps),
        all(f.kv_on_gpu for f in fps), fps[0].compute_source if fps else "estimate",
        0 if kv_total is None else kv_total - kv, 0, 0,
        CUDA_HOST_RUNTIME_BYTES if any(f.overhead for f in fps) else 0,
    )  # fmt: skip


def largest_tokens_multi(
    spec: ModelSpec,
    cfg: RunConfig,
    devices: Sequence[DeviceBudget],
    terms: DeviceTerms,
    *,
    cap_tokens: int | None = None,
) -> tuple[int, list[Footprint] | None]:
    """The largest T (multiple of 256, <= cap) for which ``cfg.n_seq`` samples fit every device:
    ``fit.largest_fitting_steps`` over the per-device totals. (0, None) when 256 tokens do not fit."""
    g = max(cfg.n_seq, 1)
    cap = (cap_tokens if cap_tokens is not None else context_cap(spec)) // KV_PAD_CELLS
    ranges = split_layers(spec.n_layer, terms.tensor_split, n_gpu_layers=cfg.n_gpu_layers)
    costs = _device_costs(spec, cfg, ranges)
    memo: dict[int, list[Footprint]] = {}

    def at(steps: int) -> list[Footprint]:
        if steps not in memo:
            memo[steps] = multi_footprint(spec, cfg.with_ctx(steps * KV_PAD_CELLS * g), terms, costs=costs)
        return memo[steps]

    have = tuple(d.vram_bytes for d in devices)
    steps = largest_fitting_steps(lambda s: tuple(f.gpu_total for f in at(s)), have, cap)
    return (steps * KV_PAD_CELLS, at(steps)) if steps else (0, None)


def shortfalls(fps: Sequence[Footprint], devices: Sequence[DeviceBudget]) -> list[str]:
    """'GPU 1: needs 8.40 GiB of 8.00 GiB: 0.40 GiB short' for each device over its cap."""
    out = []
    for fp, dev in zip(fps, devices, strict=True):
        if fp.gpu_total > dev.vram_bytes:
            out.append(
                f"{dev.name}: needs {format_bytes(fp.gpu_total)} of {format_bytes(dev.vram_bytes)}: "
                f"{format_bytes(fp.gpu_total - dev.vram_bytes)} short"
            )
    return out
