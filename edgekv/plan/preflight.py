"""Pre-flight: the memory model against a cap, refusing before anything loads; ``--ctx auto``.

Pure: the compute-buffer probe (a llama.cpp dry run) is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from edgekv.errors import DoesNotFit, SpecError
from edgekv.model.quant import DEFAULT_KV_TYPES
from edgekv.model.spec import ModelSpec
from edgekv.plan.devices import (
    DeviceBudget,
    DeviceTerms,
    combined,
    largest_tokens_multi,
    multi_footprint,
    shortfalls,
)
from edgekv.plan.fit import FitTerms, context_cap, footprint_at, largest_tokens_per_seq
from edgekv.plan.memory import KV_PAD_CELLS, Footprint, RunConfig, WeightLayout, kv_bytes
from edgekv.units import format_bytes

ComputeProbe = Callable[[RunConfig], int | None]  # measured compute bytes (dry run) or None
SplitProbe = Callable[[RunConfig], tuple[int, ...] | None]  # each device's measured compute bytes, or None


@dataclass(frozen=True, slots=True)
class Preflight:
    """A configuration the memory model accepted, with its prediction."""

    cfg: RunConfig
    footprint: Footprint
    have_bytes: int
    gpu: bool
    devices: tuple[DeviceBudget, ...] = ()  # a layer split's devices (their caps sum to have_bytes)
    device_footprints: tuple[Footprint, ...] = ()  # one per device; ``footprint`` is their sum

    @property
    def need_bytes(self) -> int:
        return self.footprint.gpu_total


def device_terms(
    spec: ModelSpec, cfg: RunConfig, *, gpu: bool, compute_bytes: int | None, margin_bytes: int
) -> tuple[RunConfig, FitTerms]:
    """The config and fixed terms the capped device sees. On a CPU build that device is host
    memory: one mapped copy of every tensor (a tied output shares token_embd), no CUDA overhead."""
    if gpu:
        return cfg, FitTerms(None, compute_bytes, None, None, margin_bytes)
    host = replace(cfg, n_gpu_layers=-1, offload_kqv=True)
    return host, FitTerms(WeightLayout(0, (), spec.weights_bytes), compute_bytes, None, 0, margin_bytes)


def predict(
    spec: ModelSpec, cfg: RunConfig, *, gpu: bool, compute_bytes: int | None = None, margin_bytes: int = 0
) -> Footprint:
    """The memory model for one run on the capped device."""
    dev_cfg, terms = device_terms(spec, cfg, gpu=gpu, compute_bytes=compute_bytes, margin_bytes=margin_bytes)
    return footprint_at(spec, dev_cfg, terms)


def max_ctx(spec: ModelSpec, cfg: RunConfig) -> int:
    """The largest total context: the trained one per sequence, times the sequences."""
    return context_cap(spec) * max(cfg.n_seq, 1)


def largest_ctx(
    spec: ModelSpec, cfg: RunConfig, *, have_bytes: int, gpu: bool, compute_bytes: int | None, margin_bytes: int = 0
) -> int | None:
    """The largest n_ctx (G x T, T a multiple of 256 <= trained context) whose prediction fits; None if none.

    The same search as pick's: ``fit.largest_tokens_per_seq``.
    """
    dev_cfg, terms = device_terms(spec, cfg, gpu=gpu, compute_bytes=compute_bytes, margin_bytes=margin_bytes)
    t, fp = largest_tokens_per_seq(spec, dev_cfg, have_bytes=have_bytes, terms=terms)
    return t * max(cfg.n_seq, 1) if fp is not None else None


def tokens_text(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 and n >= 1024 else str(n)


def describe(spec: ModelSpec) -> str:
    """'Qwen3-8B-Q4_K_M' from the file name, with the file type added when the name lacks it."""
    stem = spec.name[:-5] if spec.name.lower().endswith(".gguf") else spec.name
    if spec.file_type and spec.file_type.lower() not in stem.lower():
        return f"{stem} {spec.file_type}"
    return stem


def _kv_text(cfg: RunConfig) -> str:
    k, v = cfg.type_k.value, cfg.type_v.value
    return f"{k} KV" if k == v else f"{k}/{v} K/V"


def _suggestions(
    spec: ModelSpec, cfg: RunConfig, *, have_bytes: int, gpu: bool, compute_bytes: int | None, margin_bytes: int
) -> str:
    tries = []
    n = largest_ctx(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute_bytes=compute_bytes, margin_bytes=margin_bytes)
    if n is not None and n < cfg.n_ctx:
        tries.append(f"--ctx {tokens_text(n // 1024 * 1024 if n >= 1024 else n)}")
    cur = kv_bytes(spec, cfg).total
    for kv in sorted(DEFAULT_KV_TYPES, key=lambda t: -t.bits):
        alt = replace(cfg, type_k=kv, type_v=kv, flash_attn=cfg.flash_attn or kv.quantized)
        fp = predict(spec, alt, gpu=gpu, compute_bytes=compute_bytes, margin_bytes=margin_bytes)
        if kv_bytes(spec, alt).total < cur and fp.gpu_total <= have_bytes:
            tries.append(f"--kv {kv.value}")
            break
    if cfg.n_seq > 1:
        tries.append("fewer --parallel samples")
    tries.append("a smaller quant")
    return "try " + (", ".join(tries[:-1]) + " or " + tries[-1] if len(tries) > 1 else tries[0]) + "."


def _auto_ctx(
    spec: ModelSpec, cfg: RunConfig, *, have_bytes: int, gpu: bool, compute: ComputeProbe | None, margin_bytes: int
) -> RunConfig:
    """The largest context that fits: searched with the buffer measured at the largest context (an
    upper bound), then again with the smaller buffer measured at the context found, keeping the
    larger context only if its own measured buffer still fits. The largest context is the trained one,
    cut to the largest whose weights and KV alone fit: the dry run allocates host memory by n_ctx, so
    a GGUF claiming 16M tokens is never probed at 16M under a 1 GiB cap (it took 16.8 GB and a
    std::bad_alloc)."""
    top = largest_ctx(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute_bytes=0, margin_bytes=margin_bytes)
    c_top = compute(cfg.with_ctx(min(max_ctx(spec, cfg), top or max_ctx(spec, cfg)))) if compute else None
    n = largest_ctx(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute_bytes=c_top, margin_bytes=margin_bytes)
    if n is None:
        return cfg.with_ctx(KV_PAD_CELLS * cfg.n_seq)  # report the smallest context's shortfall
    found = cfg.with_ctx(n)
    c_n = compute(found) if compute else None
    if c_n is None or c_top is None or c_n >= c_top:
        return found
    n2 = largest_ctx(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute_bytes=c_n, margin_bytes=margin_bytes)
    if n2 is None or n2 <= n:
        return found
    bigger = cfg.with_ctx(n2)
    fp = predict(spec, bigger, gpu=gpu, compute_bytes=compute(bigger) if compute else None, margin_bytes=margin_bytes)
    return bigger if fp.gpu_total <= have_bytes else found


def preflight(
    spec: ModelSpec,
    cfg: RunConfig,
    *,
    have_bytes: int,
    gpu: bool,
    compute: ComputeProbe | None = None,
    auto_ctx: bool = False,
    margin_bytes: int = 0,
    cap_text: str | None = None,
    ram_bytes: int | None = None,
) -> Preflight:
    """Check ``cfg`` against ``have_bytes`` before loading; with ``auto_ctx`` pick the largest n_ctx.

    On a GPU, ``ram_bytes`` (``--ram``; None = not checked) bounds the host side as well
    (``Footprint.host_total``: host weights such as experts kept in RAM by ``cfg.n_cpu_moe``, host KV,
    llama.cpp's host buffers); a plan whose host side does not fit is refused too, naming both sides.

    ``compute(cfg)`` measures the compute buffer (a dry run); None falls back to the formula.
    With ``auto_ctx`` the search uses the buffer measured at the largest context (an upper
    bound: it grows with n_ctx), then measures again at the chosen one.

    Raises:
        DoesNotFit: with what the run needs, what the cap leaves, the shortfall and what to try.
    """
    cap_text = cap_text or format_bytes(have_bytes)
    if cfg.n_cpu_moe and not spec.is_moe:
        raise SpecError(
            f"--n-cpu-moe {cfg.n_cpu_moe}: {describe(spec)} has no experts to keep in RAM (a dense model)",
            hint="drop --n-cpu-moe, or use --ngl to keep whole layers in RAM",
        )
    # Cheap before expensive: without its compute buffer a configuration that already does not fit
    # is refused before llama.cpp is asked for a dry run (which allocates host memory by n_ctx).
    first = cfg.with_ctx(KV_PAD_CELLS * cfg.n_seq) if auto_ctx else cfg
    if predict(spec, first, gpu=gpu, compute_bytes=0, margin_bytes=margin_bytes).gpu_total > have_bytes:
        compute = None
        cfg = first
    if auto_ctx:
        cfg = _auto_ctx(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute=compute, margin_bytes=margin_bytes)
    c = compute(cfg) if compute else None
    fp = predict(spec, cfg, gpu=gpu, compute_bytes=c, margin_bytes=margin_bytes)
    ram_short = gpu and ram_bytes is not None and fp.host_total > ram_bytes
    if fp.gpu_total <= have_bytes and not ram_short:
        return Preflight(cfg, fp, have_bytes, gpu)
    need, short = fp.gpu_total, fp.gpu_total - have_bytes
    where = "the GPU" if gpu else "memory"
    ram_part = ""
    if gpu and ram_bytes is not None:
        host = fp.host_total
        ram_part = f"; the RAM side needs {format_bytes(host)} of --ram {format_bytes(ram_bytes)}" + (
            f": {format_bytes(host - ram_bytes)} short" if ram_short else " (fits)"
        )
    if short <= 0:  # only the RAM side is short
        experts = f" (experts of {cfg.n_cpu_moe} blocks in RAM)" if cfg.n_cpu_moe else ""
        raise DoesNotFit(
            f"{describe(spec)} at {cfg.n_ctx} tokens with {_kv_text(cfg)}{experts}: the GPU side needs "
            f"{format_bytes(need)} of --vram {cap_text} (fits){ram_part}",
            need_bytes=fp.host_total,
            have_bytes=ram_bytes or 0,
            hint="try fewer experts in RAM (--n-cpu-moe), a smaller quant, or more --ram if the machine has it.",
        )
    raise DoesNotFit(
        f"{describe(spec)} at {cfg.n_ctx} tokens with {_kv_text(cfg)} needs {format_bytes(need)} of {where}; "
        f"--vram {cap_text} leaves {format_bytes(have_bytes)}: {format_bytes(short)} short{ram_part}",
        need_bytes=need,
        have_bytes=have_bytes,
        hint=_suggestions(spec, cfg, have_bytes=have_bytes, gpu=gpu, compute_bytes=c, margin_bytes=margin_bytes),
    )


def preflight_split(
    spec: ModelSpec,
    cfg: RunConfig,
    devices: tuple[DeviceBudget, ...],
    *,
    compute: SplitProbe | None = None,
    auto_ctx: bool = False,
    margin_bytes: int = 0,
) -> Preflight:
    """``preflight`` for a layer split (``cfg.tensor_split``): every device under its own cap.

    ``compute(cfg)`` measures each device's compute buffer (a dry run with the split); None, or a
    probe that returns None, falls back to ``devices.device_compute_estimate``. With ``auto_ctx``
    the search uses the buffers measured at the largest context (an upper bound).

    Raises:
        DoesNotFit: names each device over its cap with its shortfall ("GPU 1: needs 8.40 GiB of
            8.00 GiB: 0.40 GiB short") and what to try.
    """

    def terms(c: tuple[int, ...] | None, *, counted: bool = True) -> DeviceTerms:
        return DeviceTerms(cfg.tensor_split, None, c, None, None, margin_bytes, counted)

    first = cfg.with_ctx(KV_PAD_CELLS * cfg.n_seq) if auto_ctx else cfg
    if shortfalls(multi_footprint(spec, first, terms(None, counted=False)), devices):
        compute, cfg = None, first  # does not fit even without compute buffers: no dry run
    if auto_ctx:
        c_top = compute(cfg.with_ctx(max_ctx(spec, cfg))) if compute else None
        t, fits = largest_tokens_multi(spec, cfg, devices, terms(c_top))
        cfg = cfg.with_ctx(t * max(cfg.n_seq, 1)) if fits is not None else first
    c = compute(cfg) if compute else None
    fps = multi_footprint(spec, cfg, terms(c))
    have = sum(d.vram_bytes for d in devices)
    layout = WeightLayout.from_spec(spec)
    total = combined(fps, layout=layout)
    short = shortfalls(fps, devices)
    if not short:
        return Preflight(cfg, total, have, True, devices, tuple(fps))
    split = ",".join(f"{x:g}" for x in cfg.tensor_split)
    tries = []
    t, fits = largest_tokens_multi(spec, cfg.with_ctx(KV_PAD_CELLS), devices, terms(c))
    if fits is not None and t * max(cfg.n_seq, 1) < cfg.n_ctx:
        tries.append(f"--ctx {tokens_text(t * max(cfg.n_seq, 1))}")
    tries += ["another --tensor-split", "a smaller --kv", "a smaller quant"]
    raise DoesNotFit(
        f"{describe(spec)} at {cfg.n_ctx} tokens with {_kv_text(cfg)}, split {split} over {len(devices)} "
        "devices: " + "; ".join(short),
        need_bytes=total.gpu_total,
        have_bytes=have,
        hint="try " + ", ".join(tries[:-1]) + " or " + tries[-1],
    )
