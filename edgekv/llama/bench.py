"""The benchmark, on the runs that ``session`` prepares, loads and measures.

It follows llama-bench: prompt processing times ``n_prompt`` tokens decoded in
batches; decode times ``n_gen`` single-token steps after the KV cache was filled to ``depth``
(llama-bench ``-d``), each ``llama_decode`` followed by ``llama_synchronize`` before the clock
stops. Tokens are random (seeded), as llama-bench's are.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekv.errors import DoesNotFit, KvConfigError, LlamaError
from edgekv.llama import build
from edgekv.llama import runner as runtime
from edgekv.llama import session as sess
from edgekv.llama.records import BenchRecord, BenchSettings, Stats
from edgekv.logconfig import get_logger
from edgekv.model.gguf_reader import read_spec
from edgekv.model.spec import ModelSpec
from edgekv.plan import preflight
from edgekv.plan.memory import Footprint, RunConfig

log = get_logger(__name__)

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what runs now)


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
    vram_bytes: int | Sequence[int] | None = None,
    cap_text: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    ram_bytes: int | None = None,
) -> list[BenchRecord]:
    """Benchmark each configuration at each depth; over-cap ones come back as ``refused``.

    Each configuration is loaded afresh (so its memory is its own) under one cap reservation;
    with one cap per device (a layer split) each load reserves its own caps.
    """
    settings = settings or BenchSettings()
    p = Path(path)
    spec = read_spec(p)
    gpu_any = any(build.device_is_gpu(c) for c in configs)
    common = {
        "vram_bytes": vram_bytes, "device": sess.device_name(gpu_any), "gpu": gpu_any, "build": build.build_info()
    }  # fmt: skip
    total = len(configs) * len(depths)
    done = 0
    split = vram_bytes is not None and not isinstance(vram_bytes, int) and len(vram_bytes) > 1
    cap = None if split or isinstance(vram_bytes, Sequence) else sess.open_cap(vram_bytes, gpu=gpu_any)
    records: list[BenchRecord] = []
    probes = {gpu: sess.compute_probe(p, gpu=gpu, verbose=verbose) for gpu in (False, True)}

    def rec(cfg: RunConfig, depth: int, status: str, **kw: Any) -> None:
        records.append(BenchRecord(p.name, str(p), cfg, depth, settings, status, extra=dict(common), **kw))

    try:
        for cfg in configs:
            label = f"{cfg.type_k.value}/{cfg.type_v.value} ctx {cfg.n_ctx}"
            if progress:
                progress(done, total, label)
            try:
                prepared = sess.prepare(
                    p, cfg, vram_bytes=vram_bytes, spec=spec, compute=probes[build.device_is_gpu(cfg)],
                    cap_text=cap_text, verbose=verbose, ram_bytes=ram_bytes,
                )  # fmt: skip
            except (DoesNotFit, KvConfigError) as e:
                have = e.have_bytes if isinstance(e, DoesNotFit) else None
                fp = None if split else _safe_predict(spec, cfg, probes[build.device_is_gpu(cfg)], have_bytes=have)
                for d in depths:
                    rec(cfg, d, "refused", reason=str(e), predicted=fp)
                done += len(depths)
                continue
            fp = prepared.footprint
            _reset_peak_rss()
            try:
                session = sess.open_run(prepared, cap=cap, n_threads=settings.n_threads, n_batch=settings.n_batch,
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
                            rec(cfg, d, "error", reason=str(e), predicted=fp, measured=sess.measure(session))
                        else:
                            m = sess.measure(session)
                            rec(cfg, d, "ok", predicted=fp, measured=m, prompt_tps=pp, decode_tps=tg)
                    done += 1
    finally:
        if cap is not None:
            cap.release()
    if progress:
        progress(total, total, "done")
    return records


def _safe_predict(
    spec: ModelSpec, cfg: RunConfig, probe: preflight.ComputeProbe, *, have_bytes: int | None = None
) -> Footprint | None:
    """The prediction of a refused configuration, for its record (None if even the dry run fails).

    Where it is over ``have_bytes`` even without a compute buffer, the formula stands in for the dry
    run, which would allocate host memory by n_ctx (``--ctx 100m``) for a configuration already refused."""
    gpu = build.device_is_gpu(cfg)
    if have_bytes is not None and preflight.predict(spec, cfg, gpu=gpu, compute_bytes=0).gpu_total > have_bytes:
        return preflight.predict(spec, cfg, gpu=gpu, compute_bytes=None)
    try:
        c = probe(cfg)
    except (LlamaError, KvConfigError):
        return None
    return preflight.predict(spec, cfg, gpu=build.device_is_gpu(cfg), compute_bytes=c)


def _reset_peak_rss() -> None:
    """Let the next configuration's VmHWM be its own (Linux: 5 > /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def grid(kv_types: Sequence[tuple[Any, Any]], contexts: Sequence[int], *, base: RunConfig) -> list[RunConfig]:
    """Every (K, V) pair x context, from ``base`` (a quantized V without flash attention is refused later)."""
    return [replace(base, n_ctx=n_ctx, type_k=tk, type_v=tv) for tk, tv in kv_types for n_ctx in contexts]
