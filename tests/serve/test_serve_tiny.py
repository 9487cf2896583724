"""``edgekv serve`` on the tiny generated model, driven by the official ``openai`` client and raw HTTP:
chat, stream, n, budget, limits, the queue's 429, disconnects, the API key, logs without text."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.serve.server import Server, start

KEY = "test-key-123"
SLOTS = 4
SLOT_CTX = 4096
MARKER = "zebra-quartz-marker"


@pytest.fixture(scope="module")
def server(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    s = start(
        tiny,
        "--ctx",
        str(SLOTS * SLOT_CTX),
        "--parallel",
        str(SLOTS),
        "--threads",
        "1",
        "--queue",
        "2",
        "--max-body",
        "64K",
        "--max-n",
        "4",
        "--max-tokens",
        "4000",
        "--api-key",
        KEY,
        "--grace",
        "1",
        log=log,
    )
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60)


def post(server: Server, path: str, body: bytes | str, key: str | None = KEY) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + path, content=body, headers=headers, timeout=60)


def chat_body(**extra: object) -> str:
    return json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "ignore_eos": True, **extra})


NO_EOS = {"ignore_eos": True}  # the random model may end a sample at any token


def test_chat_n_samples_and_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": MARKER}], n=3,
                                       max_tokens=7, temperature=0.8, seed=5, extra_body=NO_EOS)  # fmt: skip
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" and c.message.role == "assistant" for c in r.choices)
    assert r.usage is not None and r.usage.completion_tokens == 21
    assert r.model == "tiny-qwen3-F16" and r.id.startswith("chatcmpl-")
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-qwen3-F16"]


def test_stream_gives_the_same_text_as_a_whole_answer(client: openai.OpenAI) -> None:
    args = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": 40,
        "seed": 11,
        "n": 2,
        "extra_body": NO_EOS,
    }
    whole = client.chat.completions.create(**args)  # type: ignore[call-overload]
    texts = ["", ""]
    finishes: dict[int, str] = {}
    usage = None
    for chunk in client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
        usage = chunk.usage or usage
    assert texts == [c.message.content for c in whole.choices]
    assert finishes == {0: "length", 1: "length"}
    assert usage is not None and usage.completion_tokens == 80


def test_completions_endpoint(client: openai.OpenAI) -> None:
    r = client.completions.create(model="tiny", prompt="Once upon", max_tokens=5, n=2, seed=1, extra_body=NO_EOS)
    assert len(r.choices) == 2 and all(c.finish_reason == "length" for c in r.choices)
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="tiny", prompt="Once upon",
                                                                              max_tokens=5, seed=1, stream=True,
                                                                              extra_body=NO_EOS)
                       if c.choices)  # fmt: skip
    assert streamed == r.choices[0].text


def test_thinking_budget_injects_the_answer_cue(client: openai.OpenAI) -> None:
    """At the budget the paper's cue is injected (this model has no thinking), then the answer decodes
    within max_tokens - budget; the cue is part of the returned text, streamed or not."""
    extra = {"thinking_budget": 6, "vote": True}
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "2+2?"}], max_tokens=14,
                                       n=2, seed=3, extra_body=extra)  # fmt: skip
    for c in r.choices:  # the tiny vocabulary spells a space "▁"
        assert "\n\n**Final▁Answer**\n\\boxed{" in (c.message.content or "")
        assert c.finish_reason in ("stop", "length")
    vote = r.model_extra["vote"]  # type: ignore[index]
    assert vote["n"] == 2 and len(vote["answers"]) == 2
    assert sum(g["votes"] for g in vote["groups"]) == sum(a is not None for a in vote["answers"])
    text = ""
    for chunk in client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "2+2?"}],
                                                max_tokens=14, seed=3, stream=True, extra_body=extra):  # fmt: skip
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == r.choices[0].message.content


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (chat_body(n=5), 400, "n", "limit is 4"),
        (chat_body(max_tokens=5000), 400, "max_tokens", "limit is 4000"),
        (chat_body(n="two"), 400, "n", "must be an integer"),
        (chat_body(temperature="hot"), 400, "temperature", "finite number"),
        (chat_body(stop=["\n"]), 400, "stop", "not supported"),
        (chat_body(top_k=50), 400, "top_k", "1..20"),
        ('{"messages": [', 400, None, "not valid JSON"),
        ("[1, 2]", 400, None, "JSON object"),
        (json.dumps({"messages": []}), 400, "messages", "non-empty"),
        (chat_body(junk="x" * 70_000), 413, None, "65536 bytes"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    server: Server, body: str, status: int, param: str | None, words: str
) -> None:
    r = post(server, "/v1/chat/completions", body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"]


def test_a_prompt_past_the_context_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="word " * 10_000, max_tokens=4)
    assert e.value.code == "context_length_exceeded" and "limit is 4095" in str(e.value)


def test_api_key(server: Server) -> None:
    bad = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert post(server, "/v1/completions", json.dumps({"prompt": "x"}), key=None).status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no key


def _busy(server: Server) -> float:
    return server.metrics(KEY)["edgekv_slots_busy"]


def test_a_streaming_client_that_disconnects_frees_its_slots(server: Server) -> None:
    before = server.metrics(KEY)['edgekv_requests_total{outcome="cancelled"}']
    body = chat_body(max_tokens=4000, n=4, stream=True)
    with httpx.stream("POST", server.base_url + "/chat/completions", content=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as r:  # fmt: skip
        lines = r.iter_lines()
        while '"content": "' not in (line := next(lines)) or '"content": ""' in line:
            pass
        assert _busy(server) == SLOTS
    t0 = time.monotonic()
    while _busy(server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert _busy(server) == 0 and time.monotonic() - t0 < 2  # 16,000 tokens would take far longer
    assert server.metrics(KEY)['edgekv_requests_total{outcome="cancelled"}'] == before + 1


def test_a_waiting_client_that_disconnects_frees_its_slots(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = chat_body(max_tokens=4000, n=4).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    t0 = time.monotonic()
    while _busy(server) < SLOTS and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert _busy(server) == SLOTS
    sock.close()
    t0 = time.monotonic()
    while _busy(server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert _busy(server) == 0 and time.monotonic() - t0 < 2


def test_past_the_queue_limit_a_429_with_retry_after(server: Server) -> None:
    """Four slots, a queue of 2: one stream of n=4 runs, two wait, the fourth request is refused; the
    streams are then closed (cancelled), and every slot is free again."""
    body = chat_body(max_tokens=4000, n=4, stream=True)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def main() -> tuple[httpx.Response, list[int]]:
        async with contextlib.AsyncExitStack() as stack:
            c = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60))
            streams, readers = [], []
            for _ in range(3):
                r = await stack.enter_async_context(c.stream("POST", "/v1/chat/completions", content=body))
                readers.append(r.aiter_lines())  # kept: a dropped reader closes its stream
                await readers[-1].__anext__()  # the role chunk: the request is in the engine's feed
                streams.append(r)
                await until(lambda: server.metrics(KEY)["edgekv_requests_running"] == 1)  # the first one runs
            await until(lambda: server.metrics(KEY)["edgekv_requests_queued"] == 2)
            refused = await c.post("/v1/chat/completions", content=chat_body(max_tokens=4))
            queued = server.metrics(KEY)["edgekv_requests_queued"]
            return refused, [r.status_code for r in streams] + [int(queued)]

    async def until(ok: Callable[[], bool]) -> None:
        for _ in range(100):
            if ok():
                return
            await asyncio.sleep(0.05)

    refused, (*statuses, queued) = asyncio.run(main())
    assert statuses == [200, 200, 200] and queued == 2
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full" and "queue limit is 2" in refused.json()["error"]["message"]
    t0 = time.monotonic()
    while _busy(server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert _busy(server) == 0 and server.metrics(KEY)["edgekv_requests_queued"] == 0


def test_the_log_holds_no_text_by_default(server: Server) -> None:
    log = server.log_text()
    assert "prompt tokens" in log  # -v: one line per request, counts and times
    assert MARKER not in log


def test_sigterm_cuts_running_requests_with_a_finish_reason(tiny: Path, tmp_path: Path) -> None:
    s = start(tiny, "--ctx", "32768", "--parallel", "2", "--threads", "1", "--grace", "0.5", "--log-text",
              log=tmp_path / "serve.log")  # fmt: skip
    try:
        body = json.dumps({"prompt": MARKER, "max_tokens": 16000, "n": 2, "stream": True, "ignore_eos": True})
        conn = http.client.HTTPConnection(s.url.removeprefix("http://"), timeout=30)
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.readline()
        s.proc.send_signal(15)
        finishes = []
        rest = resp.read().decode()
        for line in rest.splitlines():
            if line.startswith("data: {"):
                finishes += [c["finish_reason"] for c in json.loads(line[6:])["choices"] if c["finish_reason"]]
        assert sorted(finishes) == ["shutdown", "shutdown"] and rest.rstrip().endswith("data: [DONE]")
        assert s.proc.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url + "/health", timeout=2)
        assert MARKER in s.log_text()  # --log-text logs the prompt
        assert "stopped" in s.log_text()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_a_card_alone_serves_picks_top_plan_once_downloaded() -> None:
    """`edgekv serve --vram 8G`: pick's top plan for the card; not downloaded, one line says how to get it."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgekv", "serve", "--vram", "8G"], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "is not on this machine" in r.stderr
    assert "edgekv download " in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_sigterm_lets_a_running_request_finish_within_the_grace(tiny: Path, tmp_path: Path) -> None:
    s = start(tiny, "--ctx", "8192", "--parallel", "1", "--threads", "1", "--grace", "30", log=tmp_path / "serve.log")
    try:
        body = json.dumps({"prompt": "go", "max_tokens": 1500, "stream": True, "ignore_eos": True})
        conn = http.client.HTTPConnection(s.url.removeprefix("http://"), timeout=60)
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.readline()
        s.proc.send_signal(15)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no new connections while it drains
            httpx.get(s.url + "/health", timeout=2)
        chunks = [json.loads(line[6:]) for line in resp.read().decode().splitlines() if line.startswith("data: {")]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["length"]
        assert s.proc.wait(30) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_think_markers_flag_names_the_pair_the_server_splits_on(tiny: Path, tmp_path: Path) -> None:
    """The flag reaches the server; the tiny model's template names no marker, and the server says so."""
    s = start(tiny, "--ctx", "1024", "--parallel", "1", "--threads", "1", "--think-markers", "[THINK],[/THINK]",
              log=tmp_path / "serve.log")  # fmt: skip
    try:
        assert ("thinking markers: [THINK] ... [/THINK] (--think-markers), but the chat template names neither: "
                "no reasoning is split off") in s.log_text()  # fmt: skip
    finally:
        assert s.stop() == 0


def test_a_malformed_think_markers_is_a_usage_error(tiny: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgekv", "serve", str(tiny), "--think-markers", "[THINK]"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --think-markers '[THINK]': give the opening")
