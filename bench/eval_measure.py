"""A real accuracy measurement: one model file, its requantized lighter weights, three KV types and two
budgets, G samples per problem, every configuration appended to JSONL under bench/results/eval/.

Weights: the shipped file, plus Q3_K_M and Q2_K made from it by edgekv's quantizer
(``edgekv.llama.quantize.quantize_gguf``; llama.cpp allows requantizing with a warning, as the
paper's lower-bit points would be made from a higher-bit file when no other is at hand). Each
weights file is loaded once (``LoadedModel``) and reused for its KV x budget configurations. A
rerun resumes: finished problems of a configuration are skipped.

    PYTHONPATH=. python3 bench/eval_measure.py qwen2.5-coder-0.5b-instruct.gguf            # the full grid
    PYTHONPATH=. python3 bench/eval_measure.py MODEL.gguf --problems 5 --budgets 256 --kv q8_0 --weights shipped
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgekv.eval.datasets import load_problems
from edgekv.eval.run import EvalConfig, evaluate
from edgekv.llama.quantize import quantize_gguf
from edgekv.llama.runner import LoadedModel
from edgekv.model.quant import KvType

RESULTS = Path(__file__).resolve().parent / "results" / "eval"


def weight_files(model: Path, wanted: list[str], work: Path) -> list[tuple[str, Path]]:
    out = []
    for w in wanted:
        if w == "shipped":
            out.append((w, model))
            continue
        path = work / f"{model.stem}.requant-{w}.gguf"
        if not path.is_file():
            t0 = time.perf_counter()
            quantize_gguf(model, path, w, allow_requantize=True)
            print(f"quantized {model.name} -> {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)  # noqa: T201
        out.append((w, path))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="the shipped GGUF (e.g. Qwen2.5-Coder-0.5B-Instruct)")
    ap.add_argument("--dataset", default="synth")
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--budgets", default="256,512")
    ap.add_argument("--kv", default="f16,q8_0,q4_0")
    ap.add_argument("--weights", default="shipped,Q3_K_M,Q2_K")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--reserve", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ngl", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--slots", type=int, default=None, help="default: as many as fit (at most 16)")
    ap.add_argument("--out", type=Path, default=None, help="JSONL (default: bench/results/eval/<model>.jsonl)")
    ap.add_argument("--work", type=Path, default=None, help="where requantized files go (default: beside --out)")
    args = ap.parse_args()
    out = args.out or RESULTS / f"{args.model.stem}.jsonl"
    work = args.work or out.parent
    work.mkdir(parents=True, exist_ok=True)
    problems = load_problems(args.dataset, limit=args.problems, seed=args.seed)
    budgets = [int(b) for b in args.budgets.split(",")]
    kvs = [KvType.parse(k) for k in args.kv.split(",")]
    rows = []
    for label, path in weight_files(args.model, args.weights.split(","), work):
        with LoadedModel(path, n_gpu_layers=args.ngl) as model:
            for budget in budgets:
                for kv in kvs:
                    cfg = EvalConfig(
                        model_path=str(path), dataset=args.dataset, budget_tokens=budget,
                        reserve_tokens=args.reserve, samples=args.samples, type_k=kv, type_v=kv,
                        temperature=args.temperature, seed=args.seed, n_gpu_layers=args.ngl,
                        slots=args.slots, n_threads=args.threads,
                    )  # fmt: skip
                    t0 = time.perf_counter()
                    res = evaluate(cfg, problems, out=out, model=model)
                    m = res.metrics
                    rows.append((label, res.config["quant"], kv.value, budget, m["pass_at_1"]["value"],
                                 m["maj_at_k"][-1]["value"], m["mean_tokens"], m["cut_fraction"], m["decode_tps"],
                                 res.config["memory"]["paper_total"], time.perf_counter() - t0))  # fmt: skip
                    print(_row(rows[-1]), flush=True)  # noqa: T201
    print(f"\n{args.model.name}: {len(problems)} {args.dataset} problems, G={args.samples}, -> {out}")  # noqa: T201
    print(_header())  # noqa: T201
    for r in rows:
        print(_row(r))  # noqa: T201


def _header() -> str:
    return (f"{'weights':8} {'quant':8} {'KV':5} {'budget':>6} {'pass@1':>7} {'maj@G':>7} {'tokens':>7} "
            f"{'cut':>5} {'tok/s':>7} {'w+KV MiB':>9} {'secs':>7}")  # fmt: skip


def _row(r: tuple) -> str:  # type: ignore[type-arg]
    label, quant, kv, budget, p1, maj, tokens, cut, tps, mem, secs = r
    return (f"{label:8} {quant or '?':8} {kv:5} {budget:6d} {100 * p1:6.1f}% {100 * maj:6.1f}% {tokens:7.0f} "
            f"{100 * cut:4.0f}% {tps:7.1f} {mem / 2**20:9.1f} {secs:7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
