"""Aggregate decode tokens/s of ``edgekv serve`` and of llama.cpp's ``llama-server`` at G = 1, 4, 16
concurrent requests, on one GPU, same model, same sampler, same context per slot (issue #26).

The model is the Qwen3-4B shape at Q8_0 as a sparse GGUF (zero weights, tests/ggufgen: llama.cpp
computes on zeros at full speed; its test vocabulary makes each ASCII letter one token). Both servers
get G slots of T = 1024 cells (``--ctx G*T --parallel G`` and ``-c G*T -np G``), q8_0 K and V, flash
attention, every layer on the GPU, and the same requests: ``/v1/completions`` of a distinct random
128-token prompt (no prompt cache can help), temperature 0.6, top_p 0.95, top_k 20, min_p 0 (llama-
server's chain restricted to those: ``samplers``), ``ignore_eos`` so every sample has exactly its
max_tokens.

Aggregate decode tokens/s at G: G requests sent at once, non-streaming, with N1 = 128 and then
N2 = 384 tokens each; rate = G x (N2 - N1) / (wall(N2) - wall(N1)), the medians of 3 runs of each,
after a warm-up; the prompt, the HTTP and the servers' per-request costs cancel in the difference.
One JSON line per (server, G) to $OUT/gpu_serve.jsonl, and the ratio edgekv / llama-server per G.
Then, if time allows (``--anchor-by``), the anchor in the same run: ``edgekv bench --parallel`` against
``llama-batched-bench -pps`` (from the same folder as LLAMA_SERVER), G = 1, 4, 16, appended there too.

On the GPU machine, from the repo root (LLAMA_SERVER: the llama-server binary built from the vendored
llama.cpp; PYTHONPATH: the CUDA llama-cpp-python's site and the repo; starlette and uvicorn are pure
Python and are taken from .gpu/serve-site when not installed, made on the CPU machine with
``pip install --target .gpu/serve-site starlette uvicorn``):

    LLAMA_SERVER=/tmp/lcpp/build/bin/llama-server PYTHONPATH=/tmp/site:. python3 bench/gpu_serve.py --out $OUT

No step starts after ``--budget`` seconds (default 400; a step takes under a minute), so the run ends
within 8 minutes; a skipped step is recorded as such.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SITE = ROOT / ".gpu" / "serve-site"

T_SLOT = 1024
N_PROMPT = 128
N1, N2 = 128, 384
REPS = 3
SAMPLER = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not become healthy in {timeout} s: {log.read_text()[-3000:]}")


def start(kind: str, model: Path, g: int, out: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = out / f"{kind}-G{g}.log"
    env = dict(os.environ)
    if kind == "edgekv":
        extra = [str(SITE)] if SITE.is_dir() else []
        env["PYTHONPATH"] = os.pathsep.join([*extra, str(ROOT), env.get("PYTHONPATH", "")])
        cmd = [sys.executable, "-m", "edgekv", "serve", str(model), "--port", str(port), "--ctx", str(g * T_SLOT),
               "--parallel", str(g), "--kv", "q8_0", "--ngl", "-1", "--flash-attn", "--max-n", "1",
               "--queue", "64", "--temperature", "0.6", "--top-p", "0.95", "--top-k", "20"]  # fmt: skip
    else:
        cmd = [os.environ["LLAMA_SERVER"], "-m", str(model), "--port", str(port), "--host", "127.0.0.1",
               "-c", str(g * T_SLOT), "-np", str(g), "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-ngl", "99",
               "--no-warmup"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_health(port, proc, log)
    return proc, port


def one(port: int, kind: str, n_gen: int, seed: int) -> tuple[float, int]:
    rng = random.Random(seed)
    # the test vocabulary's words never merge: each ASCII letter is one byte token, so N_PROMPT letters are
    # N_PROMPT tokens (+ the leading space's 3 byte tokens), the same for both servers
    prompt = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(N_PROMPT))
    body: dict[str, Any] = {"model": "m", "prompt": prompt, "max_tokens": n_gen, "ignore_eos": True, "seed": seed,
                            **SAMPLER}  # fmt: skip
    if kind == "llama-server":
        body.update(samplers=["top_k", "top_p", "min_p", "temperature"], cache_prompt=False, n_predict=n_gen)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise RuntimeError(f"{kind}: {r.status} {data}")
    got = data["usage"]["completion_tokens"]
    if got != n_gen:
        raise RuntimeError(f"{kind}: {got} tokens, asked {n_gen}")
    return dt, int(data["usage"]["prompt_tokens"])


def info(port: int, path: str) -> Any:
    """What the server says of itself (llama-server's /props: slots, n_ctx; edgekv's /v1/models)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", path)
        data = json.loads(c.getresponse().read())
    except (OSError, ValueError) as e:
        return f"unavailable: {e}"
    if isinstance(data, dict) and "default_generation_settings" in data:  # keep the slot settings, not the template
        return {k: data.get(k) for k in ("total_slots", "default_generation_settings", "build_info")}
    return data


PROMPT_TOKENS: set[int] = set()  # as the servers counted them (the same tokenizer: one value)


def batch(port: int, kind: str, g: int, n_gen: int, seed: int) -> float:
    """G requests at once; the wall time until the last one is answered."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(g) as pool:
        done = list(pool.map(lambda i: one(port, kind, n_gen, seed * 1000 + i), range(g)))
    PROMPT_TOKENS.update(p for _, p in done)
    return time.perf_counter() - t0


def anchor(tools: Path, model: Path, gs: list[int], jsonl: Path) -> None:
    """``edgekv bench --parallel`` against ``llama-batched-bench -pps`` (a shared 128-token prompt, 256
    tokens per sample) in the same run: the engine without HTTP, against llama.cpp's own tool (no sampling)."""
    from bench.gpu_batched import batched_bench, edgekv_parallel

    if not (tools / "llama-batched-bench").is_file():
        print(f"no {tools / 'llama-batched-bench'}: anchor skipped", flush=True)
        return
    base = {"model_file": model.name, "n_prompt": 128, "n_gen": 256, "kv": "q8_0"}
    rows = [
        {"anchor": "llama-batched-bench", **base, **r}
        for r in batched_bench(tools, model, kv="q8_0", npp=[128], ntg=[256], npl=gs, shared=True, device=0)
    ]
    ours = edgekv_parallel(model, kv="q8_0", npp=128, ntg=256, npl=gs, device=0, sampler="host")
    rows += [{"anchor": "edgekv bench --parallel", **base, **r} for r in ours]
    with jsonl.open("a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    lb = {r.get("pl"): r.get("speed_tg") for r in rows if r["anchor"] == "llama-batched-bench"}
    ek = {r.get("n_seq"): (r.get("decode_tps") or {}).get("median") for r in ours}
    print("\n| G | llama-batched-bench S_TG | edgekv bench --parallel | ratio |\n|---|---|---|---|")
    for g in gs:
        ratio = f"{ek[g] / lb[g]:.3f}" if lb.get(g) and ek.get(g) else "-"
        print(f"| {g} | {lb.get(g)} | {ek.get(g)} | {ratio} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu_serve")))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgekv-shapes"))
    ap.add_argument("--gs", default="1,4,16")
    ap.add_argument("--budget", type=float, default=400.0, help="seconds; steps past it are skipped")
    ap.add_argument("--servers", default="llama-server,edgekv", help="a smoke test on CPU: --servers edgekv")
    ap.add_argument("--model", type=Path, help="another GGUF (a smoke test with the tiny model)")
    ap.add_argument("--anchor-by", type=float, default=300.0,
                    help="run the anchor (llama-batched-bench -pps vs edgekv bench --parallel, G = 1, 4, 16) only "
                    "if the serve runs ended within this many seconds; 0: never")  # fmt: skip
    args = ap.parse_args()
    t_start = time.time()
    servers = args.servers.split(",")
    if "llama-server" in servers and "LLAMA_SERVER" not in os.environ:
        raise SystemExit("set LLAMA_SERVER=/path/to/llama-server")
    if "edgekv" in servers:
        import importlib.util

        sys.path.insert(0, str(SITE))
        if any(importlib.util.find_spec(m) is None for m in ("starlette", "uvicorn")):
            raise SystemExit(f"edgekv serve needs starlette and uvicorn: pip install --target {SITE} starlette uvicorn "
                             "(on a machine with PyPI), then carry .gpu")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    from bench.gpu_batched import model_file

    model = args.model or model_file("qwen3-4b", "Q8_0", args.workdir)
    rows: list[dict[str, Any]] = []
    jsonl = args.out / "gpu_serve.jsonl"
    for g in [int(x) for x in args.gs.split(",")]:
        for kind in servers:
            row: dict[str, Any] = {"server": kind, "G": g, "model": "qwen3-4b-shape Q8_0 (zero weights)",
                                   "n_prompt": N_PROMPT, "n1": N1, "n2": N2, "t_slot": T_SLOT, "kv": "q8_0",
                                   "model_file": model.name, **SAMPLER}  # fmt: skip
            if time.time() - t_start > args.budget:
                row["status"] = "skipped (time budget)"
            else:
                proc, port = start(kind, model, g, args.out)
                try:
                    row["server_info"] = info(port, "/props" if kind == "llama-server" else "/v1/models")
                    batch(port, kind, g, 16, seed=999)  # warm-up (CUDA graphs, allocations)
                    t1 = [batch(port, kind, g, N1, seed=10 + r) for r in range(REPS)]
                    t2 = [batch(port, kind, g, N2, seed=20 + r) for r in range(REPS)]
                    m1, m2 = statistics.median(t1), statistics.median(t2)
                    row.update(status="ok", wall_n1_s=t1, wall_n2_s=t2, end_to_end_tps_n2=round(g * N2 / m2, 1),
                               prompt_tokens=sorted(PROMPT_TOKENS),
                               decode_tps=round(g * (N2 - N1) / (m2 - m1), 1))  # fmt: skip
                except Exception as e:  # recorded: the other runs still go
                    row.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
                finally:
                    PROMPT_TOKENS.clear()
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            rows.append(row)
            with jsonl.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print("\n| G | llama-server t/s | edgekv t/s | edgekv / llama-server |\n|---|---|---|---|")
    for g in sorted({r["G"] for r in rows}):
        by = {r["server"]: r.get("decode_tps") for r in rows if r["G"] == g}
        ls, ek = by.get("llama-server"), by.get("edgekv")
        ratio = f"{ek / ls:.3f}" if ls and ek else "-"
        print(f"| {g} | {ls} | {ek} | {ratio} |")
    tools = Path(os.environ.get("LLAMA_SERVER", "")).parent
    if "llama-server" in servers and args.anchor_by and time.time() - t_start < args.anchor_by:
        anchor(tools, model, [int(x) for x in args.gs.split(",")], jsonl)
    print(f"total {time.time() - t_start:.0f} s; wrote {jsonl}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
