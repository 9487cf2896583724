"""``edgekv bench --parallel``: G samples of one shared prompt, through the real generation path.

The same engine as ``run`` and ``eval`` (``edgekv.llama.batch``: the prompt decoded once and copied
to the G sequences, one batch of G tokens per step, llama.cpp's sampler chain per sample), timed
the way llama-batched-bench times ``-pps`` (a shared prompt): prompt tokens/s of the shared prompt,
and aggregate decode tokens/s = G x n_gen / the whole time of the decode steps (building the batch,
llama_decode, waiting for the device, sampling, budget forcing: all of it). End-of-generation tokens
are ignored, as llama.cpp's tools do (a zero-weight model would otherwise end within a few steps).
Per-sample tokens/s is the aggregate over G; ``step_ms`` splits a step into its parts (build,
submit, wait, sample, accept: ``EngineStats``), ``sample_share`` is sampling's part of it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekv.errors import DoesNotFit
from edgekv.llama import session as sess
from edgekv.llama.records import Stats
from edgekv.llama.sampling import SamplerPlace, Sampling
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig, pad


@dataclass(frozen=True, slots=True)
class ParallelRecord:
    """One G of a parallel benchmark."""

    model: str
    n_seq: int
    n_prompt: int
    n_gen: int
    type_k: str
    type_v: str
    n_ctx: int
    status: str  # "ok" or "refused"
    reason: str | None = None
    prompt_tps: Stats | None = None
    decode_tps: Stats | None = None  # aggregate over the G samples
    sample_share: float | None = None  # picking the tokens / the whole step, median over reps
    step_ms: dict[str, float] | None = None  # ms per step by part (EngineStats.step_parts_ms), median over reps
    device: str = ""
    gpu: bool = False
    sampler: str = ""  # where the sampler chains ran (edgekv.llama.sampling)
    predicted_bytes: int | None = None  # the memory model's total for the device (the plan's figure)
    measured_bytes: int | None = None  # the process after the runs: NVML less the reservation, or peak RSS

    def as_dict(self) -> dict[str, Any]:
        per_seq = self.decode_tps.median / self.n_seq if self.decode_tps else None
        return {
            "model": self.model, "n_seq": self.n_seq, "n_prompt": self.n_prompt, "n_gen": self.n_gen,
            "type_k": self.type_k, "type_v": self.type_v, "n_ctx": self.n_ctx, "status": self.status,
            "reason": self.reason, "prompt_tps": self.prompt_tps.as_dict() if self.prompt_tps else None,
            "decode_tps": self.decode_tps.as_dict() if self.decode_tps else None,
            "per_seq_tps": round(per_seq, 3) if per_seq is not None else None,
            "sample_share": round(self.sample_share, 4) if self.sample_share is not None else None,
            "step_ms": self.step_ms,
            "device": self.device, "gpu": self.gpu, "sampler": self.sampler,
            "predicted_bytes": self.predicted_bytes, "measured_bytes": self.measured_bytes,
        }  # fmt: skip


def bench_parallel(
    path: str | os.PathLike[str],
    n_seqs: Sequence[int],
    *,
    base: RunConfig,
    n_prompt: int = 256,
    n_gen: int = 256,
    reps: int = 3,
    sampling: Sampling | None = None,
    sampler: SamplerPlace = SamplerPlace.AUTO,
    vram_bytes: int | Sequence[int] | None = None,
    cap_text: str | None = None,
    n_threads: int | None = None,
    verbose: bool = False,
    ram_bytes: int | None = None,
) -> list[ParallelRecord]:
    """For each G: one context of G sequences (T = prompt + n_gen per sample), ``reps`` timed runs."""
    from edgekv.llama.batch import Engine
    from edgekv.llama.generation import Forcing, Request

    sampling = sampling or Sampling()  # the real sampler chain (Qwen3's thinking defaults)
    p = Path(path)
    rng = random.Random(0)
    out: list[ParallelRecord] = []
    for g in n_seqs:
        per_seq = pad(n_prompt + n_gen + 1, KV_PAD_CELLS)
        cfg = replace(base, n_seq=g, n_ctx=per_seq * g, device_sampling=sampler.on_device)
        head = (p.name, g, n_prompt, n_gen, cfg.type_k.value, cfg.type_v.value, cfg.n_ctx)
        try:
            prepared = sess.prepare(p, cfg, vram_bytes=vram_bytes, cap_text=cap_text, verbose=verbose,
                                    ram_bytes=ram_bytes)  # fmt: skip
        except DoesNotFit as e:
            out.append(ParallelRecord(*head, status="refused", reason=str(e)))
            continue
        prompt_tps: list[float] = []
        decode_tps: list[float] = []
        shares: list[float] = []
        parts: list[dict[str, float]] = []
        place = ""
        measured: int | None = None
        with sess.open_run(prepared, n_threads=n_threads, verbose=verbose) as session:
            runner = session.runner
            prompt = tuple(rng.randrange(runner.n_vocab // 4, runner.n_vocab) for _ in range(n_prompt))
            forcing = Forcing(budget_tokens=n_gen, ignore_eog=True)
            for rep in range(reps + 1):  # the first run warms up (CUDA graphs, allocations)
                engine = Engine(runner, sampling=sampling, forcing=forcing, sampler=sampler, require_fit=False)
                seeds = tuple(sampling.seed + 1000 * rep + s for s in range(g))
                st = engine.run([Request(0, prompt, seeds)], on_finished=lambda _f: None)
                if rep == 0:
                    continue
                prompt_tps.append(st.n_prompt_decoded / st.prompt_seconds if st.prompt_seconds > 0 else 0.0)
                decode_tps.append(st.decode_tps)
                shares.append(st.sample_seconds / st.step_seconds if st.step_seconds > 0 else 0.0)
                parts.append(st.step_parts_ms())
                place = st.sampler
            measured = sess.measure(session).process
        out.append(ParallelRecord(
            *head, status="ok", prompt_tps=Stats.of(prompt_tps), decode_tps=Stats.of(decode_tps),
            sample_share=Stats.of(shares).median, sampler=place,
            step_ms={k: round(Stats.of([p[k] for p in parts]).median, 4) for k in parts[0]},
            device=sess.device_name(prepared.gpu),
            gpu=prepared.gpu, predicted_bytes=prepared.footprint.gpu_total - prepared.footprint.margin,
            measured_bytes=measured,
        ))  # fmt: skip
    return out
