"""The engine thread of ``edgekv serve``: it alone touches llama.cpp; the HTTP side talks to it
through a :class:`~edgekv.llama.feed.Feed` (a thread-safe queue) and gets each request's events back
on its asyncio loop.

A :class:`Job` is one checked request made into an engine :class:`~edgekv.llama.generation.Request`
(prompt tokens, one seed per sample, its own budget forcing and sampler settings). The engine
thread reports a streaming job's text pieces (batched: one hand-over to the loop per decode step)
and every job's end (:class:`~edgekv.llama.generation.Finished`). A job the client gave up on is
cancelled: the engine frees its slots before its next step.

The figures ``/metrics`` shows are read here: requests queued and running, slots busy, KV cells
held, tokens generated and the recent decode rate.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any

from edgekv.errors import ApiRequestError, KvConfigError
from edgekv.eval.run import FINAL_ANSWER_CUE, WAIT, is_thinking_model, thinking_cue
from edgekv.llama.batch import Engine
from edgekv.llama.feed import Feed
from edgekv.llama.generation import Finished, Forcing, Request
from edgekv.llama.runner import Runner
from edgekv.llama.sampling import SamplerPlace, Sampling
from edgekv.logconfig import get_logger
from edgekv.model.markers import DEFAULT_MARKERS, ThinkMarkers
from edgekv.serve.protocol import ApiCall, Limits

log = get_logger("edgekv.serve")

DEFAULT_RESERVE = 64  # answer tokens after the cue when a thinking budget comes without max_tokens (eval's)
RATE_WINDOW_S = 5.0
# A prompt longer than (limit + 1) x this many characters is first tokenized in that head only: past the
# limit there, it is refused without tokenizing the rest (llama.cpp's SPM tokenizer is superlinear:
# 1.5 s for 60 kB on the tiny test vocabulary, so 20 such prompts at once held up every request).
HEAD_CHARS_PER_TOKEN = 8  # the decode rate /metrics shows is over this many recent seconds


@dataclass
class Job:
    """One request in the engine and the queue its events come back on."""

    key: str
    call: ApiCall
    request: Request
    prompt_tokens: int
    max_tokens: int
    opened_thinking: (
        bool  # the prompt ends inside the open marker (R1-distill's template): the text starts as reasoning
    )
    events: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)
    submitted: float = field(default_factory=time.perf_counter)
    closed: bool = False


class Worker:
    """Owns the runner and its engine thread (see the module docstring)."""

    def __init__(
        self, runner: Runner, *, sampling: Sampling, sampler: SamplerPlace, model_id: str, limits: Limits,
        log_text: bool = False, markers: ThinkMarkers = DEFAULT_MARKERS,
    ) -> None:  # fmt: skip
        self.runner = runner
        self.sampling = sampling
        self.model_id = model_id
        self.limits = limits
        self.log_text = log_text
        self.engine = Engine(runner, sampling=sampling, forcing=Forcing(budget_tokens=1), sampler=sampler)
        self.feed = Feed()
        self.markers = markers  # the model's thinking markers (``store.catalog.resolve_markers``)
        self.thinking = is_thinking_model(runner, markers)
        ids = self._ids
        self.cue = ids(thinking_cue(markers) if self.thinking else FINAL_ANSWER_CUE)
        self.answer_cue = ids(FINAL_ANSWER_CUE)
        self.end_think = runner.token_id(markers.close) if self.thinking else None
        self.wait = ids(WAIT)
        self.jobs: dict[Hashable, Job] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failed: str | None = None
        self._pending: list[tuple[Job, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._marks: deque[tuple[float, int]] = deque()
        self.in_flight = 0
        self.outcomes: dict[str, int] = {"ok": 0, "cancelled": 0, "shutdown": 0, "rejected": 0, "error": 0}
        self.prompt_tokens_total = 0
        self.seconds_sum = 0.0
        self.mean_seconds = 1.0  # a moving mean of request durations: Retry-After's estimate

    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.runner.tokenize(text, add_special=False, parse_special=True))

    # -- the engine thread -------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.Thread(target=self._run, name="edgekv-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine.run(self.feed, on_finished=self._finished, on_token=self._token, on_step=self._step)
        except BaseException as e:  # the engine is gone: every waiting client gets a 500, /health a 503
            self.failed = f"{type(e).__name__}: {e}"
            log.error("the engine stopped: %s", self.failed)
            with self._lock:
                for job in list(self.jobs.values()):
                    self._pending.append((job, ("error", self.failed)))
            self._flush()

    def _token(self, key: Hashable, index: int, _tok: int, piece: str) -> None:
        job = self.jobs.get(key)
        if job is not None and job.call.stream and piece:
            self._pending.append((job, ("piece", index, piece)))

    def _finished(self, f: Finished) -> None:
        job = self.jobs.pop(f.key, None)
        if job is not None:
            self._pending.append((job, ("done", f)))
        self._flush()

    def _step(self) -> None:
        now = time.perf_counter()
        if not self._marks or now - self._marks[-1][0] >= 0.25:
            self._marks.append((now, self.engine.stats.n_sampled))
            while self._marks and now - self._marks[0][0] > RATE_WINDOW_S:
                self._marks.popleft()
        self._flush()

    def _flush(self) -> None:
        if not self._pending or self.loop is None:
            return
        batch, self._pending = self._pending, []
        try:
            self.loop.call_soon_threadsafe(_deliver, batch)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    # -- the HTTP side -----------------------------------------------------------------------

    def prepare(self, call: ApiCall) -> Job:
        """Tokenize and size a checked call into a Job (run off the event loop: tokenizing a long
        prompt takes milliseconds). Raises ApiRequestError naming the limit it is past."""
        r = self.runner
        chat = call.endpoint == "chat"
        text = r.apply_chat_template(list(call.messages)) if chat else call.prompt
        param = "messages" if chat else "prompt"
        limit = self.limits.max_prompt_tokens
        head = (limit + 1) * HEAD_CHARS_PER_TOKEN
        if len(text) > head and (n_head := len(r.tokenize(text[:head]))) > limit:  # bounded work for a huge prompt
            raise ApiRequestError(
                f"the prompt has more than {limit} tokens ({n_head} in its first {head} characters); this "
                f"server's limit is {limit} (--max-prompt-tokens)", param=param, code="context_length_exceeded",
            )  # fmt: skip
        tokens = r.tokenize(text)
        if not tokens:
            raise ApiRequestError("the prompt is empty", param=param, code="invalid_value")
        n_prompt = len(tokens)
        if n_prompt > limit:
            raise ApiRequestError(
                f"the prompt has {n_prompt} tokens; this server's limit is {limit} (--max-prompt-tokens)",
                param=param, code="context_length_exceeded",
            )  # fmt: skip
        room = r.n_ctx_seq - n_prompt - 1  # cells left in a slot after the prompt
        forcing, max_tokens = self._forcing(call, room, n_prompt, param)
        key = ("chatcmpl-" if call.endpoint == "chat" else "cmpl-") + secrets.token_hex(12)
        base = call.seed if call.seed is not None else secrets.randbits(32)
        seeds = tuple((base + i) & 0xFFFFFFFF for i in range(call.n))
        sampling = self._sampling(call)
        request = Request(key, tuple(tokens), seeds, forcing, sampling)
        try:
            self.engine.check_request(request)
        except KvConfigError as e:
            param = "top_k" if "top_k" in e.message else "temperature" if "greedily" in e.message else param
            code = "context_length_exceeded" if param in ("messages", "prompt") else "invalid_value"
            raise ApiRequestError(e.message, param=param, code=code) from None
        opened = self.thinking and text.rstrip().endswith(self.markers.open)
        return Job(key, call, request, n_prompt, max_tokens, opened)

    def _forcing(self, call: ApiCall, room: int, n_prompt: int, param: str) -> tuple[Forcing, int]:
        ctx = self.runner.n_ctx_seq
        if call.thinking_budget is None:
            max_tokens = call.max_tokens if call.max_tokens is not None else min(self.limits.max_tokens, room)
            if max_tokens > room:
                raise ApiRequestError(
                    f"a slot holds {ctx} tokens; the prompt ({n_prompt}) and max_tokens ({max_tokens}) need "
                    f"{n_prompt + max_tokens + 1}", param=param, code="context_length_exceeded",
                )  # fmt: skip
            if max_tokens < 1:
                raise ApiRequestError(f"the prompt ({n_prompt} tokens) fills a slot's {ctx}", param=param,
                                      code="context_length_exceeded")  # fmt: skip
            return Forcing(budget_tokens=max_tokens, ignore_eog=call.ignore_eos), max_tokens
        budget = call.thinking_budget
        reserve = call.reserve_tokens or (call.max_tokens - budget if call.max_tokens else DEFAULT_RESERVE)
        forcing = Forcing(
            budget_tokens=budget, reserve_tokens=reserve, cue_tokens=self.cue, answer_cue_tokens=self.answer_cue,
            end_think_token=self.end_think, wait_tokens=self.wait if call.force_length else (),
            ignore_eog=call.ignore_eos,
        )  # fmt: skip
        return forcing, budget + reserve

    def _sampling(self, call: ApiCall) -> Sampling | None:
        changes: dict[str, Any] = {}
        for name in ("temperature", "top_p", "top_k", "min_p"):
            value = getattr(call, name)
            if value is not None and value != getattr(self.sampling, name):
                changes[name] = value
        if not changes:
            return None
        if changes.get("temperature") == 0.0:
            changes["greedy"] = True
        return replace(self.sampling, **changes)

    def submit(self, job: Job) -> None:
        """Hand a prepared job to the engine (on the event loop's thread)."""
        if self.failed is not None:
            raise ApiRequestError(f"the engine stopped ({self.failed})", status=500, kind="server_error")
        self.jobs[job.key] = job
        try:
            self.feed.put(job.request)
        except RuntimeError:
            self.jobs.pop(job.key, None)
            raise ApiRequestError("the server is shutting down", status=503, code="shutting_down",
                                  kind="server_error") from None  # fmt: skip
        self.in_flight += 1
        self.prompt_tokens_total += job.prompt_tokens

    def end(self, job: Job, outcome: str) -> None:
        """A job is over (answered, cancelled, cut): count it once."""
        if job.closed:
            return
        job.closed = True
        self.in_flight -= 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        seconds = time.perf_counter() - job.submitted
        self.seconds_sum += seconds
        if outcome == "ok":
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * seconds

    def cancel(self, job: Job) -> None:
        """The client went away: free the job's slots at the engine's next step."""
        if job.closed:
            return
        self.jobs.pop(job.key, None)
        self.feed.cancel(job.key)
        self.end(job, "cancelled")
        log.info("%s: cancelled (the client disconnected)", job.key)

    def queue_depth(self) -> int:
        return max(0, self.in_flight - self.engine.running)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead over the slots, at the recent mean duration."""
        ahead = self.queue_depth() + 1
        return max(1, round(ahead * self.mean_seconds / max(self.runner.n_seq_max, 1)))

    def decode_rate(self) -> float:
        marks = list(self._marks)
        if not marks:
            return 0.0
        now = time.perf_counter()
        t0, n0 = next(((t, n) for t, n in marks if now - t <= RATE_WINDOW_S), marks[-1])
        n = self.engine.stats.n_sampled
        return (n - n0) / (now - t0) if now > t0 and n > n0 else 0.0

    def close(self, *, cut: bool = False) -> None:
        self.feed.close(cut=cut)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def metrics(self) -> str:
        """Prometheus text format (version 0.0.4)."""
        e, r = self.engine, self.runner
        cells_total = r.n_ctx_seq * r.n_seq_max
        rows: list[tuple[str, str, str, list[tuple[str, float]]]] = [
            ("edgekv_requests_queued", "gauge", "Requests waiting for a slot.", [("", self.queue_depth())]),
            ("edgekv_requests_running", "gauge", "Requests with a sample in a slot.", [("", e.running)]),
            ("edgekv_slots_busy", "gauge", "Slots decoding a sample.", [("", e.slots_busy)]),
            ("edgekv_slots_total", "gauge", "Slots (parallel sequences) of the context.", [("", r.n_seq_max)]),
            ("edgekv_kv_cells_used", "gauge", "KV cells the live samples hold.", [("", e.kv_cells)]),
            ("edgekv_kv_cells_total", "gauge", "KV cells of all slots.", [("", cells_total)]),
            ("edgekv_kv_usage_ratio", "gauge", "KV cells used over all.", [("", e.kv_cells / max(cells_total, 1))]),
            ("edgekv_decode_tokens_per_second", "gauge", f"Tokens sampled per second, last {RATE_WINDOW_S:g} s.",
             [("", self.decode_rate())]),
            ("edgekv_tokens_generated_total", "counter", "Tokens sampled.", [("", e.stats.n_sampled)]),
            ("edgekv_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.",
             [("", self.prompt_tokens_total)]),
            ("edgekv_requests_total", "counter", "Requests by outcome.",
             [(f'{{outcome="{k}"}}', v) for k, v in sorted(self.outcomes.items())]),
            ("edgekv_request_seconds_sum", "counter", "Seconds from submission to the end, summed.",
             [("", self.seconds_sum)]),
        ]  # fmt: skip
        out = []
        for name, kind, help_, values in rows:
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
            out += [f"{name}{labels} {_num(v)}" for labels, v in values]
        return "\n".join(out) + "\n"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def _deliver(batch: list[tuple[Job, tuple[Any, ...]]]) -> None:
    for job, event in batch:
        if not job.closed:
            job.events.put_nowait(event)
