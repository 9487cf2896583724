"""Measured runs: the pre-flight check, loading under the cap, and the benchmark.

Shared by ``edgekv run`` and ``edgekv bench``: :func:`prepare` reads the GGUF header, measures
the compute buffer with a dry run and checks the memory model against the cap (refusing before
anything loads); :func:`open_run` reserves the cap and loads; :func:`measure` reads back what
llama.cpp allocated and what the process holds (NVML on a GPU, peak RSS on a CPU). The record
types and their dict/CSV forms live in ``bench_records`` and are re-exported here.

The benchmark follows llama-bench: prompt processing times ``n_prompt`` tokens decoded in
batches; decode times ``n_gen`` single-token steps after the KV cache was filled to ``depth``
(llama-bench ``-d``), each ``llama_decode`` followed by ``llama_synchronize`` before the clock
stops. Tokens are random (seeded), as llama-bench's are.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekv import runtime, vram
from edgekv.bench_records import CSV_COLUMNS as CSV_COLUMNS
from edgekv.bench_records import BenchRecord as BenchRecord
from edgekv.bench_records import BenchSettings as BenchSettings
from edgekv.bench_records import Measured as Measured
from edgekv.bench_records import Stats as Stats
from edgekv.bench_records import flat as flat
from edgekv.bench_records import predicted_dict as predicted_dict
from edgekv.bench_records import summary as summary
from edgekv.compute_cache import ComputeCache, cache_key
from edgekv.errors import DoesNotFit, KvConfigError, LlamaError, RuntimeUnavailable
from edgekv.gguf_io import read_spec
from edgekv.memory import Footprint, RunConfig
from edgekv.spec import ModelSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what runs now)


# -- one measured run -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A configuration the pre-flight check accepted."""

    path: Path
    spec: ModelSpec
    check: vram.Preflight
    vram_bytes: int | None

    @property
    def cfg(self) -> RunConfig:
        return self.check.cfg

    @property
    def gpu(self) -> bool:
        return self.check.gpu

    @property
    def footprint(self) -> Footprint:
        return self.check.footprint


def device_is_gpu(cfg: RunConfig) -> bool:
    """Whether this run puts anything on a GPU: a GPU build with layers to offload."""
    return cfg.n_gpu_layers != 0 and runtime.gpu_offload_supported()


def host_memory_bytes() -> int:
    """MemAvailable (Linux), else total RAM: the budget of a CPU run without --vram."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def compute_probe(
    path: Path, *, gpu: bool, verbose: bool = False, cache: ComputeCache | None = None
) -> Callable[[RunConfig], int | None]:
    """The compute buffer llama.cpp reserves for a configuration: from the on-disk cache
    (model x build x settings, see ``compute_cache``) or else measured by a dry run and stored."""
    seen: dict[RunConfig, int | None] = {}
    store = cache or ComputeCache()
    spec: ModelSpec | None = None
    build = ""

    def probe(cfg: RunConfig) -> int | None:
        nonlocal spec, build
        if cfg in seen:
            return seen[cfg]
        if spec is None:
            spec, build = read_spec(path), runtime.system_info()
        key = cache_key(spec, cfg, build=build, gpu=gpu)
        value = store.get(key)
        if value is None:
            b = runtime.dry_run(path, cfg, verbose=verbose)
            value = (b.compute_device if gpu else b.compute_host) or None
            if value:
                store.put(key, value)
        seen[cfg] = value
        return value

    return probe


def prepare(
    path: str | os.PathLike[str],
    cfg: RunConfig,
    *,
    vram_bytes: int | None,
    auto_ctx: bool = False,
    probe: bool = True,
    margin_bytes: int = 0,
    cap_text: str | None = None,
    spec: ModelSpec | None = None,
    compute: vram.ComputeProbe | None = None,
    verbose: bool = False,
) -> Prepared:
    """Size ``cfg`` with the memory model (compute buffer from a dry run) against ``vram_bytes``.

    Without ``vram_bytes`` the budget is the card's free memory (GPU) or available RAM (CPU).
    ``compute`` replaces the dry-run probe (see :func:`compute_probe`); ``probe=False`` uses the formula.

    Raises:
        DoesNotFit: the configuration would not fit; nothing was loaded.
        KvConfigError: the K/V types and flash attention cannot run on this build.
    """
    p = Path(path)
    spec = spec or read_spec(p)
    runtime.resolve_flash_attn(cfg.type_k, cfg.type_v, cfg.flash_attn)
    gpu = device_is_gpu(cfg)
    if gpu:
        have = vram.usable_bytes(vram_bytes) if vram_bytes else _gpu_free()
    else:
        have = vram_bytes or host_memory_bytes()
    measure = (compute or compute_probe(p, gpu=gpu, verbose=verbose)) if probe else None
    check = vram.preflight(
        spec, cfg, have_bytes=have, gpu=gpu, compute=measure, auto_ctx=auto_ctx,
        margin_bytes=margin_bytes, cap_text=cap_text,
    )  # fmt: skip
    return Prepared(p, spec, check, vram_bytes)


def _gpu_free() -> int:
    info = vram.gpu_info()
    return info.free_bytes if info else host_memory_bytes()


@dataclass
class Session:
    """A loaded run: the runner and the cap it runs under (closed together)."""

    prepared: Prepared
    runner: runtime.Runner
    cap: vram.VramCap | None
    owns_cap: bool = False

    def close(self) -> None:
        self.runner.close()
        if self.owns_cap and self.cap is not None:
            self.cap.release()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cap(vram_bytes: int | None, *, gpu: bool) -> vram.VramCap | None:
    """Reserve the cap on a GPU run with --vram (None on CPU or without --vram)."""
    if not gpu or not vram_bytes:
        return None
    return vram.reserve_cap(vram_bytes)


def open_run(
    prepared: Prepared,
    *,
    cap: vram.VramCap | None = None,
    n_threads: int | None = None,
    n_batch: int | None = None,
    verbose: bool = False,
) -> Session:
    """Load the prepared configuration; reserves the cap first on a GPU unless ``cap`` is given."""
    own_cap = cap is None
    if own_cap:
        cap = open_cap(prepared.vram_bytes, gpu=prepared.gpu)
    try:
        runner = runtime.load(prepared.path, prepared.cfg, n_threads=n_threads, n_batch=n_batch, verbose=verbose)
    except BaseException:
        if own_cap and cap is not None:
            cap.release()
        raise
    return Session(prepared, runner, cap, owns_cap=own_cap)


def measure(session: Session) -> Measured:
    """Buffers from llama.cpp's log and the process's memory, now."""
    b = session.runner.buffers
    if session.prepared.gpu:
        model, compute = b.model_device, b.compute_device
        kv = sum(v for k, v in b.kv.items() if not runtime.is_host_buffer(k)) or b.kv_total
        try:
            process = session.cap.measured_bytes() if session.cap else vram.process_vram_bytes()
            source = "nvml" if process is not None else "unavailable"
        except RuntimeUnavailable as e:
            log.warning("%s", e)
            process, source = None, "unavailable"
    else:
        model, compute = b.model_host, b.compute_host
        kv = sum(b.kv.values()) or b.kv_total
        process, source = vram.peak_rss_bytes() or None, "rss"
    output = sum(b.output.values())
    return Measured(model, kv, compute, process, source, output, b.repack, b.kv_k, b.kv_v)


def device_name(gpu: bool) -> str:
    if gpu:
        info = vram.gpu_info()
        if info:
            return info.name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- the benchmark ----------------------------------------------------------------------------


def time_prompt(runner: runtime.Runner, tokens: Sequence[int], *, depth: int) -> float:
    """Seconds to decode ``tokens`` after position ``depth`` (the cache already holds the depth)."""
    t0 = time.perf_counter()
    runner.decode(tokens, pos0=depth)
    runner.synchronize()
    return time.perf_counter() - t0


def time_decode(runner: runtime.Runner, tokens: Sequence[int], *, depth: int) -> float:
    """Seconds for one-token decode steps at positions depth, depth+1, ... (llama-bench tg)."""
    decode_one, sync = runner.decode_one, runner.synchronize
    t0 = time.perf_counter()
    for i, tok in enumerate(tokens):
        decode_one(tok, depth + i)
        sync()
    return time.perf_counter() - t0


def fill(runner: runtime.Runner, depth: int, rng: random.Random) -> None:
    """Empty the cache and fill it with ``depth`` random tokens (untimed)."""
    runner.clear()
    if depth:
        runner.decode([rng.randrange(runner.n_vocab) for _ in range(depth)], logits_last=False)
        runner.synchronize()


def bench_loaded(runner: runtime.Runner, *, depth: int, settings: BenchSettings) -> tuple[Stats, Stats]:
    """(prompt tokens/s, decode tokens/s) over ``settings.reps`` repetitions at one depth."""
    rng = random.Random(settings.seed)
    n_voc = runner.n_vocab
    if settings.warmup:
        fill(runner, min(settings.n_prompt, 32), rng)
        runner.decode_one(rng.randrange(n_voc), min(settings.n_prompt, 32))
        runner.synchronize()
    pp: list[float] = []
    tg: list[float] = []
    fill(runner, depth, rng)  # once: each run below starts from the same first ``depth`` cells

    def back_to_depth() -> None:
        if not runner.truncate(depth):
            fill(runner, depth, rng)

    for _ in range(settings.reps):
        if settings.n_prompt:
            toks = [rng.randrange(n_voc) for _ in range(settings.n_prompt)]
            pp.append(settings.n_prompt / time_prompt(runner, toks, depth=depth))
            back_to_depth()
        if settings.n_gen:
            toks = [rng.randrange(n_voc) for _ in range(settings.n_gen)]
            tg.append(settings.n_gen / time_decode(runner, toks, depth=depth))
            back_to_depth()
    return Stats.of(pp), Stats.of(tg)


def bench(
    path: str | os.PathLike[str],
    configs: Sequence[RunConfig],
    *,
    depths: Sequence[int] = (0,),
    settings: BenchSettings | None = None,
    vram_bytes: int | None = None,
    cap_text: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
) -> list[BenchRecord]:
    """Benchmark each configuration at each depth; over-cap ones come back as ``refused``.

    Each configuration is loaded afresh (so its memory is its own) under one cap reservation.
    """
    settings = settings or BenchSettings()
    p = Path(path)
    spec = read_spec(p)
    gpu_any = any(device_is_gpu(c) for c in configs)
    common = {"vram_bytes": vram_bytes, "device": device_name(gpu_any), "gpu": gpu_any, "build": runtime.build_info()}
    total = len(configs) * len(depths)
    done = 0
    cap = open_cap(vram_bytes, gpu=gpu_any)
    records: list[BenchRecord] = []
    probes = {gpu: compute_probe(p, gpu=gpu, verbose=verbose) for gpu in (False, True)}

    def rec(cfg: RunConfig, depth: int, status: str, **kw: Any) -> None:
        records.append(BenchRecord(p.name, str(p), cfg, depth, settings, status, extra=dict(common), **kw))

    try:
        for cfg in configs:
            label = f"{cfg.type_k.value}/{cfg.type_v.value} ctx {cfg.n_ctx}"
            if progress:
                progress(done, total, label)
            try:
                prepared = prepare(
                    p, cfg, vram_bytes=vram_bytes, spec=spec, compute=probes[device_is_gpu(cfg)],
                    cap_text=cap_text, verbose=verbose,
                )  # fmt: skip
            except (DoesNotFit, KvConfigError) as e:
                fp = _safe_predict(spec, cfg, probes[device_is_gpu(cfg)])
                for d in depths:
                    rec(cfg, d, "refused", reason=str(e), predicted=fp)
                done += len(depths)
                continue
            fp = prepared.footprint
            _reset_peak_rss()
            try:
                session = open_run(prepared, cap=cap, n_threads=settings.n_threads, n_batch=settings.n_batch,
                                   verbose=verbose)  # fmt: skip
            except LlamaError as e:
                for d in depths:
                    rec(cfg, d, "error", reason=str(e), predicted=fp)
                done += len(depths)
                continue
            with session:
                for d in depths:
                    if progress:
                        progress(done, total, f"{label} depth {d}")
                    need = d + max(settings.n_prompt, settings.n_gen)
                    if need > session.runner.n_ctx_seq:
                        rec(cfg, d, "skipped", reason=f"depth {d} + {max(settings.n_prompt, settings.n_gen)} "
                            f"tokens exceed the context ({session.runner.n_ctx_seq})", predicted=fp)  # fmt: skip
                    else:
                        try:
                            pp, tg = bench_loaded(session.runner, depth=d, settings=settings)
                        except LlamaError as e:  # e.g. a decode that found no KV slot: a row, not a crash
                            rec(cfg, d, "error", reason=str(e), predicted=fp, measured=measure(session))
                        else:
                            rec(cfg, d, "ok", predicted=fp, measured=measure(session), prompt_tps=pp, decode_tps=tg)
                    done += 1
    finally:
        if cap is not None:
            cap.release()
    if progress:
        progress(total, total, "done")
    return records


def _safe_predict(spec: ModelSpec, cfg: RunConfig, probe: vram.ComputeProbe) -> Footprint | None:
    """The prediction of a refused configuration, for its record (None if even the dry run fails)."""
    try:
        c = probe(cfg)
    except (LlamaError, KvConfigError):
        return None
    return vram.predict(spec, cfg, gpu=device_is_gpu(cfg), compute_bytes=c)


def _reset_peak_rss() -> None:
    """Let the next configuration's VmHWM be its own (Linux: 5 > /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def grid(kv_types: Sequence[tuple[Any, Any]], contexts: Sequence[int], *, base: RunConfig) -> list[RunConfig]:
    """Every (K, V) pair x context, from ``base`` (a quantized V without flash attention is refused later)."""
    return [replace(base, n_ctx=n_ctx, type_k=tk, type_v=tv) for tk, tv in kv_types for n_ctx in contexts]
