"""``edgekv serve`` under load and under hostile HTTP, on CPU, in one run against one server.

The server runs the tiny generated model (tests/ggufgen: random weights, so outputs are short and
fast) on 127.0.0.1 with an ephemeral port; everything here targets that address only, is bounded in
count and time, and stops by itself.

Load: 64 concurrent clients send 1,000 requests of mixed kinds (chat or completions, streaming or
not, n = 1 or 2, prompts of 1-40 words (8-290 tokens), max_tokens 4-64, ``ignore_eos`` so that every complete
sample has exactly max_tokens tokens and ends with finish_reason "length"); 5 % of the streaming
ones are cancelled after their first text chunk. A 429 is retried after its Retry-After. Checked:
every request ends exactly once (answered, or cancelled by us), no response id repeats, every
answered request is complete (n choices, each of max_tokens tokens, a finish_reason; a stream ends
with [DONE]), and at the end /metrics shows no busy slot, no queue and the server's counts of
answered and cancelled requests equal ours. Recorded: p50/p99 latency, time to first token of the
streams, requests/s and tokens/s.

Hostile: malformed JSON, wrong types, oversize bodies (with and without Content-Length), prompts of
10k tokens past the slot's context, slow clients (a body at one byte a second, and headers at one
byte a second, each for at most 15 s), and 1,000 connections opened and dropped (some mid-request).
Each must get a 4xx or be closed; meanwhile a canary sends a small request every 0.25 s and its
successes and latencies are recorded: the server must keep serving.

    python bench/serve_load.py [--requests 1000] [--clients 64] [--out bench/results/serve_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

SLOTS = 8
SLOT_CTX = 2048
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 4)


# -- load ----------------------------------------------------------------------------------------


def make_jobs(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        stream = rng.random() < 0.5
        jobs.append({
            "i": i, "chat": rng.random() < 0.5, "stream": stream, "n": rng.choice((1, 1, 1, 2)),
            "max_tokens": rng.randint(4, 64), "words": rng.randint(1, 40),
            "cancel": False,
        })  # fmt: skip
    streams = [j for j in jobs if j["stream"]]
    for j in rng.sample(streams, min(len(streams), round(0.05 * n))):  # 5 % of all requests, all streams
        j["cancel"] = True
        j["max_tokens"] = max(j["max_tokens"], 64)  # long enough to be cut mid-stream, not after its last token
    return jobs


def body_of(job: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    text = " ".join(rng.choice(WORDS) for _ in range(job["words"]))
    body: dict[str, Any] = {"model": "tiny", "max_tokens": job["max_tokens"], "n": job["n"], "ignore_eos": True,
                            "seed": job["i"]}  # fmt: skip
    if job["chat"]:
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    if job["stream"]:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def one(c: httpx.AsyncClient, job: dict[str, Any], rec: dict[str, Any]) -> None:
    rng = random.Random(job["i"])
    body = body_of(job, rng)
    path = "/v1/chat/completions" if job["chat"] else "/v1/completions"
    t0 = time.perf_counter()
    rec.update(i=job["i"], retries=0, errors=[])
    while True:
        if not job["stream"]:
            r = await c.post(path, json=body)
            if r.status_code == 429:
                rec["retries"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            rec["latency"] = time.perf_counter() - t0
            rec["status"] = r.status_code
            if r.status_code != 200:
                rec["errors"].append(f"status {r.status_code}: {r.text[:200]}")
                return
            data = r.json()
            rec["id"] = data["id"]
            choices = data["choices"]
            if sorted(ch["index"] for ch in choices) != list(range(job["n"])):
                rec["errors"].append("choices' indices")
            if any(ch["finish_reason"] != "length" for ch in choices):
                rec["errors"].append("finish_reason")
            if data["usage"]["completion_tokens"] != job["n"] * job["max_tokens"]:
                rec["errors"].append(f"completion_tokens {data['usage']['completion_tokens']}")
            rec["tokens"] = data["usage"]["completion_tokens"]
            rec["outcome"] = "answered"
            return
        async with c.stream("POST", path, json=body) as r:
            if r.status_code == 429:
                await r.aread()
                rec["retries"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            rec["status"] = r.status_code
            if r.status_code != 200:
                rec["errors"].append(f"status {r.status_code}")
                return
            finishes: dict[int, str] = {}
            ids, usage, done, first = set(), None, 0, None
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done += 1
                    continue
                chunk = json.loads(line[6:])
                ids.add(chunk["id"])
                for ch in chunk["choices"]:
                    text = ch["delta"].get("content") if job["chat"] else ch.get("text")
                    if text and first is None:
                        first = time.perf_counter() - t0
                        if job["cancel"]:
                            rec.update(outcome="cancelled", id=chunk["id"], ttft=first)
                            return  # leaving the block closes the connection mid-stream
                    if ch.get("finish_reason"):
                        if ch["index"] in finishes:
                            rec["errors"].append("a second finish_reason")
                        finishes[ch["index"]] = ch["finish_reason"]
                usage = chunk.get("usage") or usage
            rec["latency"] = time.perf_counter() - t0
            rec["ttft"] = first
            if len(ids) != 1:
                rec["errors"].append(f"{len(ids)} ids in one stream")
            rec["id"] = next(iter(ids), None)
            if done != 1:
                rec["errors"].append(f"{done} [DONE]")
            if finishes != {k: "length" for k in range(job["n"])}:
                rec["errors"].append(f"finishes {finishes}")
            if not usage or usage["completion_tokens"] != job["n"] * job["max_tokens"]:
                rec["errors"].append(f"usage {usage}")
            rec["tokens"] = usage["completion_tokens"] if usage else 0
            rec["outcome"] = "answered" if not job["cancel"] else "cancel-missed"
            return


async def load(url: str, n_requests: int, n_clients: int, seed: int) -> dict[str, Any]:
    jobs = make_jobs(n_requests, seed)
    records: list[dict[str, Any]] = [{} for _ in jobs]
    todo = iter(range(len(jobs)))
    limits = httpx.Limits(max_connections=n_clients * 2, max_keepalive_connections=n_clients)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as c:
            for i in todo:
                try:
                    await one(c, jobs[i], records[i])
                except Exception as e:  # recorded, not raised: a lost response is a finding
                    records[i].setdefault("errors", []).append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(n_clients)))
    wall = time.perf_counter() - t0
    outcomes = Counter(r.get("outcome", "lost") for r in records)
    ids = [r["id"] for r in records if r.get("id")]
    answered = [r for r in records if r.get("outcome") == "answered"]
    lat = [r["latency"] for r in answered]
    ttft = [r["ttft"] for r in records if r.get("ttft") is not None]
    tokens = sum(r.get("tokens", 0) for r in answered)
    errors = [(r["i"], e) for r in records for e in r.get("errors", [])]
    return {
        "requests": n_requests, "clients": n_clients, "wall_s": round(wall, 2), "outcomes": dict(outcomes),
        "expected_cancelled": sum(j["cancel"] for j in jobs), "streams": sum(j["stream"] for j in jobs),
        "duplicate_ids": len(ids) - len(set(ids)), "retries_429": sum(r.get("retries", 0) for r in records),
        "incomplete_or_wrong": len(errors), "errors_first": errors[:10],
        "latency_p50_s": pct(lat, 0.50), "latency_p99_s": pct(lat, 0.99), "ttft_p50_s": pct(ttft, 0.50),
        "ttft_p99_s": pct(ttft, 0.99), "requests_per_s": round(len(answered) / wall, 2),
        "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
    }  # fmt: skip


# -- hostile -------------------------------------------------------------------------------------


async def raw(host: str, port: int, data: bytes, *, read_s: float = 15.0) -> tuple[int | None, str]:
    """Send ``data`` on a fresh connection; the status code of the answer, or None if closed first."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), read_s)
        if not line:
            return None, "closed"
        return int(line.split()[1]), line.decode(errors="replace").strip()
    except (ConnectionError, asyncio.IncompleteReadError):
        return None, "closed"
    finally:
        writer.close()


def request(path: str, body: bytes, *, length: int | None = None, extra: str = "") -> bytes:
    n = len(body) if length is None else length
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n{extra}\r\n"
    return head.encode() + body


async def slow_body(host: str, port: int, seconds: int) -> tuple[int | None, str]:
    """A body of 100 bytes announced, sent at one byte a second (for at most ``seconds``)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request("/v1/completions", b"", length=100))
        await writer.drain()
        for _ in range(seconds):
            writer.write(b" ")
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), 1.0)
            except asyncio.TimeoutError:
                continue
            return (int(line.split()[1]), line.decode().strip()) if line else (None, "closed")
        return None, "gave up (bounded)"
    except ConnectionError:
        return None, "closed"
    finally:
        writer.close()


async def slow_headers(host: str, port: int, seconds: int) -> tuple[int | None, str]:
    """Headers at one byte a second, for at most ``seconds``; then the connection is dropped."""
    reader, writer = await asyncio.open_connection(host, port)
    data = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    try:
        for b in data[:seconds]:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(1.0)
            if reader.at_eof():
                return None, "closed"
        return None, "dropped by the client (bounded)"
    except ConnectionError:
        return None, "closed"
    finally:
        writer.close()


async def open_and_drop(host: str, port: int, i: int) -> tuple[int | None, str]:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        return None, f"refused: {e}"
    if i % 3 == 1:
        writer.write(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"mess')
    elif i % 3 == 2:
        body = b'{"prompt": "drop", "max_tokens": 64, "ignore_eos": true}'
        writer.write(request("/v1/completions", body))
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.transport.abort()  # drop, no FIN handshake
    return None, "dropped"


async def hostile(url: str, seconds: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    p = int(port)
    chat = "/v1/chat/completions"
    msg = [{"role": "user", "content": "hi"}]
    cases: list[tuple[str, Any]] = []
    for i in range(50):
        cases.append(("malformed_json", raw(host, p, request(chat, b'{"messages": [{"role": "user", "con' + b"x" * i))))
    wrong = [
        {"messages": "hi"},
        {"messages": [1]},
        {"messages": msg, "n": "2"},
        {"messages": msg, "max_tokens": -1},
        {"messages": msg, "temperature": [1]},
        {"messages": msg, "stream": "yes"},
        {"prompt": 5},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": msg, "n": 10**9},
        [],
        "text",
        None,
    ]
    for i in range(50):
        cases.append(("wrong_types", raw(host, p, request(chat, json.dumps(wrong[i % len(wrong)]).encode()))))
    big = b'{"prompt": "' + b"a" * (2 << 20) + b'"}'
    for _ in range(10):
        cases.append(("oversize_with_length", raw(host, p, request("/v1/completions", big))))
    for _ in range(5):  # announced small, then more than the limit sent in chunks
        chunked = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in [big[i : i + 65536]
                            for i in range(0, len(big), 65536)]) + b"0\r\n\r\n"  # fmt: skip
        cases.append(("oversize_chunked", raw(host, p, chunked)))
    long_prompt = json.dumps({"prompt": " ".join(["alpha"] * 10_000), "max_tokens": 8}).encode()
    for _ in range(20):
        cases.append(("prompt_10k_tokens", raw(host, p, request("/v1/completions", long_prompt))))
    for _ in range(10):
        cases.append(("slow_body", slow_body(host, p, 15)))
    for _ in range(10):
        cases.append(("slow_headers", slow_headers(host, p, 15)))

    canary: list[tuple[float, bool]] = []
    stop = asyncio.Event()

    async def canary_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = await c.post(chat, json={"messages": msg, "max_tokens": 8, "ignore_eos": True})
                    ok = r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"
                except httpx.HTTPError:
                    ok = False
                canary.append((time.perf_counter() - t0, ok))
                await asyncio.sleep(0.25)

    async def drops() -> list[tuple[int | None, str]]:
        out = []
        for batch in range(10):  # 1,000 connections, 100 at a time
            out += await asyncio.gather(*(open_and_drop(host, p, batch * 100 + k) for k in range(100)))
        return out

    t0 = time.perf_counter()
    can = asyncio.create_task(canary_loop())
    named = await asyncio.wait_for(asyncio.gather(*(c for _, c in cases), return_exceptions=True), seconds)
    dropped = await asyncio.wait_for(drops(), seconds)
    await asyncio.sleep(1.0)
    stop.set()
    await can
    by_kind: dict[str, Counter[str]] = {}
    bad = []
    for (kind, _), res in zip(cases, named, strict=True):
        if isinstance(res, BaseException):
            label = f"exception {type(res).__name__}"
        else:
            status, why = res
            label = why if status is None else str(status)  # "closed" by the server, or dropped by us
        by_kind.setdefault(kind, Counter())[label] += 1
        if isinstance(res, BaseException) or not (res[0] is None or label.startswith("4")):
            bad.append((kind, label, None if isinstance(res, BaseException) else res[1]))
    by_kind["open_and_drop"] = Counter(why if s is None else str(s) for s, why in dropped)
    lat = [t for t, ok in canary if ok]
    return {
        "wall_s": round(time.perf_counter() - t0, 1), "cases": {k: dict(v) for k, v in by_kind.items()},
        "not_4xx_or_closed": bad[:10], "n_not_4xx_or_closed": len(bad),
        "canary": {"sent": len(canary), "ok": sum(ok for _, ok in canary), "p50_s": pct(lat, 0.5),
                   "p99_s": pct(lat, 0.99), "max_s": round(max(lat), 3) if lat else None},
    }  # fmt: skip


def metrics(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))}


def settle(url: str, timeout: float = 30) -> dict[str, float]:
    t0 = time.time()
    while True:
        m = metrics(url)
        if (m["edgekv_slots_busy"] == 0 and m["edgekv_requests_queued"] == 0) or time.time() - t0 > timeout:
            return m
        time.sleep(0.2)


def main() -> None:
    from tests.ggufgen import tiny_config, write_tiny_gguf
    from tests.serve.server import start

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: robust on a busy 2-core box)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hostile-seconds", type=int, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_load.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_gguf(Path(tmp) / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")
        flags = ["--ctx", str(SLOTS * SLOT_CTX), "--parallel", str(SLOTS), "--threads", str(args.threads),
                 "--max-n", "2", "--body-timeout", "5"]  # fmt: skip
        server = start(model, *flags, log=Path(tmp) / "serve.log")
        try:
            print(f"server {server.url}: {SLOTS} slots of {SLOT_CTX} tokens", flush=True)
            result: dict[str, Any] = {"model": "tiny generated Qwen3 (2 layers, hidden 256, vocab 512, F16)",
                                      "slots": SLOTS, "slot_ctx": SLOT_CTX, "threads": args.threads}  # fmt: skip
            result["load"] = asyncio.run(load(server.url, args.requests, args.clients, args.seed))
            m = settle(server.url)
            result["load"]["metrics_after"] = {k: v for k, v in m.items() if "total" in k or "busy" in k or
                                               "queued" in k or "running" in k or "kv_cells_used" in k}  # fmt: skip
            print(json.dumps(result["load"], indent=1), flush=True)
            result["hostile"] = asyncio.run(hostile(server.url, args.hostile_seconds))
            m = settle(server.url)
            result["hostile"]["metrics_after"] = {k: m[k] for k in ("edgekv_slots_busy", "edgekv_requests_queued",
                                                                    "edgekv_kv_cells_used")}  # fmt: skip
            result["hostile"]["health_after"] = httpx.get(server.url + "/health", timeout=10).json()
            print(json.dumps(result["hostile"], indent=1), flush=True)
        finally:
            result["exit_code"] = server.stop()
        lo, ho = result["load"], result["hostile"]
        checks = {
            "no_lost": lo["outcomes"].get("lost", 0) == 0 and "cancel-missed" not in lo["outcomes"],
            "no_duplicates": lo["duplicate_ids"] == 0,
            "all_complete": lo["incomplete_or_wrong"] == 0,
            "cancelled_as_asked": lo["outcomes"].get("cancelled", 0) == lo["expected_cancelled"],
            "slots_free_at_end": lo["metrics_after"]["edgekv_slots_busy"] == 0
            and lo["metrics_after"]["edgekv_kv_cells_used"] == 0,
            "server_counts_agree": lo["metrics_after"]['edgekv_requests_total{outcome="ok"}']
            == lo["outcomes"].get("answered", 0)
            and lo["metrics_after"]['edgekv_requests_total{outcome="cancelled"}'] == lo["outcomes"].get("cancelled", 0),
            "hostile_all_4xx_or_closed": ho["n_not_4xx_or_closed"] == 0,
            "kept_serving": ho["canary"]["ok"] == ho["canary"]["sent"] and ho["canary"]["sent"] > 0,
            "slots_free_after_hostile": ho["metrics_after"]["edgekv_slots_busy"] == 0,
            "clean_exit": result["exit_code"] == 0,
        }  # fmt: skip
        result["checks"] = checks
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(checks, indent=1))
        print(f"wrote {args.out}")
        if not all(checks.values()):
            sys.exit(1)


if __name__ == "__main__":
    main()
