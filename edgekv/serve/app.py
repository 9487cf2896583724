"""The HTTP side of ``edgekv serve``: a Starlette app on uvicorn (the ``edgekv[serve]`` extra).

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (both streaming over SSE with
``"stream": true``), ``GET /v1/models``, ``GET /health`` (no key needed), ``GET /metrics``
(Prometheus text). Every refusal is OpenAI's error object with a 4xx status that names the limit.

Order of checks per request: shutting down (503), the API key (401), the body (413 past
``--max-body``, 408 if it does not arrive within ``--body-timeout``, 400 if it is not a JSON object
of the right fields), the queue (429 with ``Retry-After`` when ``--queue`` requests already wait),
the prompt and its tokens against the slot (400). A client that disconnects, streaming or not, has
its request cancelled in the engine at once (its slots are free before the next decode step).

Shutdown (SIGTERM or Ctrl-C): the listening socket closes, new requests on open connections get
503, running and queued requests go on for ``--grace`` seconds; what is still running then is cut
and answered with ``finish_reason: "shutdown"``. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from edgekv.errors import ApiRequestError
from edgekv.eval.answers import extract_answer
from edgekv.eval.equivalence import group_votes, is_equivalent
from edgekv.llama.generation import Finished, Sample
from edgekv.logconfig import get_logger
from edgekv.serve.protocol import Endpoint, ThinkSplitter, parse_call
from edgekv.serve.worker import Job, Worker

log = get_logger("edgekv.serve")

FINISH = {"eog": "stop", "boxed": "stop", "reserve": "length", "length": "length", "context": "length",
          "shutdown": "shutdown"}  # fmt: skip
"""Engine finish -> OpenAI finish_reason; "shutdown": cut by the server's shutdown (docs/serve.md)."""


def _error(e: ApiRequestError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


class ServeApp:
    """The routes over one :class:`Worker`; ``draining`` once shutdown began."""

    def __init__(self, worker: Worker, *, api_key: str | None) -> None:
        self.worker = worker
        self.api_key = api_key
        self.draining = False
        self.created = int(time.time())
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.worker.start(asyncio.get_running_loop())
        yield

    async def _http_error(self, _request: Request, exc: HTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(ApiRequestError(str(exc.detail), status=exc.status_code, kind=kind))

    def _check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiRequestError("a valid API key is needed (Authorization: Bearer KEY)", status=401,
                                  code="invalid_api_key")  # fmt: skip

    # -- plain routes ------------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        w = self.worker
        if w.failed is not None:
            return JSONResponse({"status": "error", "error": w.failed}, status_code=503)
        if self.draining:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        return JSONResponse({"status": "ok", "slots_busy": w.engine.slots_busy, "slots": w.runner.n_seq_max,
                             "queued": w.queue_depth()})  # fmt: skip

    async def models(self, request: Request) -> Response:
        try:
            self._check_key(request)
        except ApiRequestError as e:
            return _error(e)
        r = self.worker.runner
        model = {
            "id": self.worker.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "edgekv",
            "meta": {"n_ctx_per_slot": r.n_ctx_seq, "slots": r.n_seq_max, "thinking": self.worker.thinking},
        }
        return JSONResponse({"object": "list", "data": [model]})  # fmt: skip

    async def metrics(self, request: Request) -> Response:
        try:
            self._check_key(request)
        except ApiRequestError as e:
            return _error(e)
        return PlainTextResponse(self.worker.metrics(), media_type="text/plain; version=0.0.4")

    # -- completions -------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self._complete(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "completion")

    async def _complete(self, request: Request, endpoint: Endpoint) -> Response:
        w = self.worker
        try:
            if self.draining:
                raise ApiRequestError("the server is shutting down", status=503, code="shutting_down",
                                      kind="server_error")  # fmt: skip
            self._check_key(request)
            body = await self._body(request)
            call = parse_call(body, endpoint, w.limits)
            if w.queue_depth() >= w.limits.max_queue:
                raise ApiRequestError(
                    f"{w.queue_depth()} requests wait for a slot; this server's queue limit is {w.limits.max_queue} "
                    "(--queue)", status=429, code="queue_full", kind="rate_limit_error",
                    headers={"Retry-After": str(w.retry_after())},
                )  # fmt: skip
            job = await asyncio.to_thread(w.prepare, call)
            w.submit(job)
        except ApiRequestError as e:
            w.outcomes["rejected"] += 1
            return _error(e)
        except ClientDisconnect:
            w.outcomes["rejected"] += 1
            return Response(status_code=400)
        if w.log_text:
            log.info("%s: %s", job.key, json.dumps(list(call.messages) if endpoint == "chat" else call.prompt))
        if call.stream:
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(self._stream(job), media_type="text/event-stream", headers=headers)
        return await self._answer(request, job)

    async def _body(self, request: Request) -> Any:
        limits = self.worker.limits
        size = request.headers.get("content-length")
        too_big = ApiRequestError(f"the request body is over this server's limit of {limits.max_body_bytes} bytes "
                                  "(--max-body)", status=413, code="body_too_large")  # fmt: skip
        if size is not None and (not size.isdigit() or int(size) > limits.max_body_bytes):
            if not size.isdigit():
                raise ApiRequestError("Content-Length is not a number", code="invalid_value")
            raise too_big
        buf = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                buf.extend(chunk)
                if len(buf) > limits.max_body_bytes:
                    raise too_big

        try:
            await asyncio.wait_for(read(), timeout=limits.body_timeout_s)
        except asyncio.TimeoutError:
            raise ApiRequestError(f"the request body did not arrive within {limits.body_timeout_s:g} s "
                                  "(--body-timeout)", status=408, code="body_timeout") from None  # fmt: skip
        try:
            return json.loads(buf)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiRequestError(f"the request body is not valid JSON ({e})", code="invalid_json") from None

    async def _answer(self, request: Request, job: Job) -> Response:
        """Wait for the job, or for the client to go away (then cancel it)."""
        w = self.worker
        done = asyncio.ensure_future(job.events.get())
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not done.done():
            done.cancel()
            w.cancel(job)
            return Response(status_code=499)
        event = done.result()
        if event[0] == "error":
            w.end(job, "error")
            return _error(ApiRequestError(f"the engine stopped ({event[1]})", status=500, kind="server_error"))
        finished: Finished = event[1]
        body = await asyncio.to_thread(self._result, job, finished)
        w.end(job, _outcome(finished))
        self._log(job, finished)
        return JSONResponse(body)

    def _texts(self, job: Job, sample: Sample) -> tuple[str | None, str]:
        """(reasoning, answer) of a sample: split for a chat with a thinking model, else all answer."""
        if job.call.endpoint != "chat" or not self.worker.thinking:
            return None, sample.text
        sp = ThinkSplitter(opened=job.opened_thinking, markers=self.worker.markers)
        parts = [sp.feed(sample.text), sp.flush()]
        return "".join(p[0] for p in parts), "".join(p[1] for p in parts)

    def _result(self, job: Job, finished: Finished) -> dict[str, Any]:
        choices = []
        answers: list[str] = []
        for i, s in enumerate(finished.samples):
            reasoning, answer = self._texts(job, s)
            answers.append(answer)
            reason = FINISH.get(s.finish, s.finish)
            if job.call.endpoint == "chat":
                message: dict[str, Any] = {"role": "assistant", "content": answer}
                if reasoning is not None:
                    message["reasoning_content"] = reasoning
                choices.append({"index": i, "message": message, "finish_reason": reason})
            else:
                choices.append({"index": i, "text": answer, "logprobs": None, "finish_reason": reason})
        body: dict[str, Any] = {
            "id": job.key, "object": "chat.completion" if job.call.endpoint == "chat" else "text_completion",
            "created": int(time.time()), "model": self.worker.model_id, "choices": choices,
            "usage": _usage(job, finished),
        }  # fmt: skip
        if job.call.vote:
            body["vote"] = vote(answers, job.call.answer_kind)
        return body

    async def _stream(self, job: Job) -> AsyncIterator[bytes]:
        """SSE chunks: text pieces as they come (reasoning apart), each choice's finish, then the vote
        and usage if asked, then ``[DONE]``. Closing the stream early cancels the job."""
        w, call = self.worker, job.call
        chat = call.endpoint == "chat"
        split = chat and w.thinking
        splitters = [ThinkSplitter(opened=job.opened_thinking, markers=self.worker.markers) for _ in range(call.n)]
        sent = [""] * call.n
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            body = {"id": job.key, "object": obj, "created": created, "model": w.model_id, "choices": choices, **extra}
            return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

        def delta(i: int, reasoning: str, answer: str, finish: str | None = None) -> dict[str, Any] | None:
            if not (reasoning or answer or finish):
                return None
            if not chat:
                return {"index": i, "text": answer, "logprobs": None, "finish_reason": finish}
            d: dict[str, Any] = {}
            if reasoning:
                d["reasoning_content"] = reasoning
            if answer:
                d["content"] = answer
            return {"index": i, "delta": d, "finish_reason": finish}

        def pieces(i: int, text: str) -> tuple[str, str]:
            sent[i] += text
            return splitters[i].feed(text) if split else ("", text)

        finished: Finished | None = None
        try:
            if chat:
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                             for i in range(call.n)])  # fmt: skip
            while finished is None:
                events = [await job.events.get()]
                while not job.events.empty():
                    events.append(job.events.get_nowait())
                merged: dict[int, str] = {}
                for ev in events:
                    if ev[0] == "piece":
                        merged[ev[1]] = merged.get(ev[1], "") + ev[2]
                    elif ev[0] == "done":
                        finished = ev[1]
                    else:  # the engine stopped
                        w.end(job, "error")
                        yield chunk([], error={"message": f"the engine stopped ({ev[1]})", "type": "server_error"})
                        return
                out = [d for i, text in sorted(merged.items()) if (d := delta(i, *pieces(i, text)))]
                if out:
                    yield chunk(out)
            answers = []
            final = []
            for i, s in enumerate(finished.samples):
                rest = s.text[len(sent[i]) :] if s.text.startswith(sent[i]) else ""
                r1, a1 = pieces(i, rest)
                r2, a2 = splitters[i].flush() if split else ("", "")
                d = delta(i, r1 + r2, a1 + a2, FINISH.get(s.finish, s.finish))
                assert d is not None
                final.append(d)
                answers.append(self._texts(job, s)[1])
            yield chunk(final)
            if call.vote:
                yield chunk([], vote=await asyncio.to_thread(vote, answers, call.answer_kind))
            if call.include_usage:
                yield chunk([], usage=_usage(job, finished))
            yield b"data: [DONE]\n\n"
            w.end(job, _outcome(finished))
            self._log(job, finished)
        finally:
            if not job.closed:  # the client went away (the stream was closed or cancelled)
                w.cancel(job)

    def _log(self, job: Job, f: Finished) -> None:
        n_out = sum(len(s.tokens) for s in f.samples)
        finishes = ",".join(sorted({s.finish for s in f.samples}))
        log.info("%s: %d prompt tokens, n=%d, %d completion tokens, %.2f s, finish %s", job.key, job.prompt_tokens,
                 len(f.samples), n_out, f.seconds, finishes)  # fmt: skip
        if self.worker.log_text:
            for i, s in enumerate(f.samples):
                log.info("%s[%d]: %s", job.key, i, json.dumps(s.text, ensure_ascii=False))


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body was read: the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _outcome(f: Finished) -> str:
    return "shutdown" if any(s.finish == "shutdown" for s in f.samples) else "ok"


def _usage(job: Job, f: Finished) -> dict[str, int]:
    out = sum(len(s.tokens) for s in f.samples)
    return {"prompt_tokens": job.prompt_tokens, "completion_tokens": out, "total_tokens": job.prompt_tokens + out}


def vote(answers: list[str], kind: str) -> dict[str, Any]:
    """The majority answer of the samples, grouped by eval's answer equivalence (``group_votes``: each
    answer joins the first group whose earliest answer it is equivalent to; ties go to the earliest)."""
    extracted = [extract_answer(a, kind=kind) for a in answers]
    groups = group_votes(extracted, equivalent=lambda a, b: is_equivalent(a, b, kind=kind))
    top = groups[0] if groups else None
    return {
        "answer": top.answer if top else None, "votes": len(top.indices) if top else 0, "n": len(answers),
        "index": top.first if top else None, "answers": extracted,
        "groups": [{"answer": g.answer, "votes": len(g.indices), "indices": list(g.indices)} for g in groups],
    }  # fmt: skip


class _Server(uvicorn.Server):
    """uvicorn's server with edgekv's shutdown (the module docstring): the first signal starts it."""

    def __init__(self, config: uvicorn.Config, serve_app: ServeApp, grace_s: float) -> None:
        super().__init__(config)
        self.serve_app = serve_app
        self.grace_s = grace_s
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        sa = self.serve_app
        if not sa.draining:
            sa.draining = True
            log.warning("shutting down: running requests get %g s to finish", self.grace_s)
            sa.worker.close()
            self._timer = threading.Timer(self.grace_s, lambda: sa.worker.close(cut=True))
            self._timer.daemon = True
            self._timer.start()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without raising the signal again after the shutdown: the drain above is the
        whole of it, and ``edgekv serve`` then stops the engine and exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (``port`` 0: an ephemeral one; read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(worker: Worker, sock: socket.socket, *, api_key: str | None, grace_s: float) -> None:
    """Serve on ``sock`` until a signal; then drain (the module docstring) and stop the engine."""
    sa = ServeApp(worker, api_key=api_key)
    config = uvicorn.Config(
        sa.app, log_level="warning", access_log=False, timeout_graceful_shutdown=int(grace_s) + 10,
        timeout_keep_alive=5, lifespan="on",
    )  # fmt: skip
    server = _Server(config, sa, grace_s)
    try:
        server.run(sockets=[sock])
    finally:
        worker.close(cut=True)
        worker.join(timeout=30)
