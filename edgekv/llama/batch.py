"""The batched generation engine: many samples of many prompts in one llama.cpp context.

Slots are llama.cpp sequence ids ``0..n_seq_max-1``; each holds one sample. A prompt is decoded once
(all but its last token, into one slot) and copied to the other slots of its samples with
``llama_memory_seq_cp``; then every live slot decodes its next token in ONE ``llama_decode`` per step
(the prompt's last token too, so each sample gets its own logits row). A finished sample's slot is
emptied (``llama_memory_seq_rm``) and goes to the next waiting sample at once (continuous batching);
when none waits, the highest live slot moves down into it (see ``_compact``);
a later sample of a prompt that is still live in another slot copies that slot and cuts it back to
the prompt instead of decoding the prompt again.

The cache is not unified (``kv_unified=False``, llama.cpp's default): each slot is its own stream of
``n_ctx / n_seq_max`` cells, so attention per token costs its own context, not everyone's, and the
memory model (``plan.fit``: G streams of T cells) is exactly what runs. llama.cpp splits a batch over
several streams into micro-batches of *consecutive* sequence ids (``split_equal(.., sequential)``), so
rows are sent sorted by slot, free slots are refilled lowest first and live slots are kept dense.

Budget forcing (:class:`Forcing`), the paper's and s1's: a sample generates up to ``budget_tokens``;
there ``cue_tokens`` (for a thinking model ``</think>`` and the final-answer cue) are injected and the
answer is decoded within ``reserve_tokens``. An early end (end-of-generation, or ``</think>`` in a
thinking model) is replaced by ``wait_tokens`` when they are given (``--force-length``).

A sample's text is made once, when it ends, from its tokens' pieces (cached per model); only a
streaming caller (``on_token``) gets each piece as it comes (the injected ones too, so the pieces add up to
the text). After the cue "\\boxed{" the braces are counted in the raw bytes.

A server feeds the engine through a :class:`~edgekv.llama.feed.Feed` instead of a list: the engine then
runs until the feed is closed and drained, takes requests as slots free up, drops a cancelled request's
slots before the next step (nothing is reported for it), and on a cut ends every running and waiting
sample at once with finish ``"shutdown"``. ``slots_busy``, ``kv_cells`` and ``running`` say how loaded
it is (written by the engine thread after each step, read by others).

Sampling: one llama.cpp sampler chain per sample (its own seed), on the device with the decode
(llama.cpp's backend sampling) or on the host; ``edgekv.llama.sampling`` says which and why.
"""

from __future__ import annotations

import codecs
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekv.errors import KvConfigError
from edgekv.llama.build import device_is_gpu
from edgekv.llama.feed import Feed
from edgekv.llama.generation import (
    EngineStats,
    Finished,
    Forcing,
    Generation,
    Request,
    Sample,
    SequenceOutput,
    SequenceTokenCallback,
)
from edgekv.llama.runner import Runner
from edgekv.llama.sampling import SamplerPlace, Sampling, SlotSamplers, refuses_sampling


@dataclass
class _Slot:
    request: _Live
    forcing: Forcing
    index: int  # sample index within the request
    pos: int  # next position to write
    pending: list[int]  # tokens to decode next step
    tokens: list[int] = field(default_factory=list)
    special: set[int] = field(default_factory=set)  # indices in tokens rendered as special (injected, </think>)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    n_sampled: int = 0
    n_budget: int = 0  # sampled + wait tokens before the cue
    thinking_closed: bool = False
    after_cue: int = -1  # tokens sampled since the cue; -1 = no cue yet
    depth: int = 1  # open braces after the cue "\boxed{"
    cut: bool = False
    injected: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)


@dataclass
class _Live:
    request: Request
    started: float
    next_index: int = 0
    done: dict[int, Sample] = field(default_factory=dict)
    slots: set[int] = field(default_factory=set)


def tokens_per_sample(forcing: Forcing) -> int:
    """Cells one sample may write after its prompt: budget, the longest injection, reserve, and one."""
    injections = max(len(forcing.cue_tokens), len(forcing.answer_cue_tokens), len(forcing.wait_tokens), 1)
    return forcing.budget_tokens + forcing.reserve_tokens + injections + 1


FinishCallback = Callable[[Finished], None]
TokenCallback = Callable[[Hashable, int, int, str], None]  # (request key, sample index, token, text piece)


class Engine:
    """Runs requests through one Runner's context (see the module docstring)."""

    def __init__(
        self,
        runner: Runner,
        *,
        sampling: Sampling,
        forcing: Forcing,
        sampler: SamplerPlace = SamplerPlace.AUTO,
        require_fit: bool = True,
    ) -> None:
        self.runner = runner
        self.require_fit = require_fit  # False: a prompt + budget past a slot's context stops at "context"
        self.sampling = sampling
        self.forcing = forcing
        self.sampler = sampler  # where the chains run
        self.n_slots = runner.n_seq_max
        self.stats = EngineStats()
        self.keep_cache = False
        self._callback_seconds = 0.0  # on_finished's time within the current step
        self.tokens_per_sample = tokens_per_sample(forcing)
        self.slots_busy = 0  # live slots after the last step (read by other threads)
        self.kv_cells = 0  # KV cells the live slots hold
        self.running = 0  # requests with a sample in a slot
        self.n_cancelled = 0

    def check_request(self, request: Request) -> None:
        """Refuse a request the engine could not run: its prompt and budget past a slot, no samples, or
        a sampler this engine's sampling path cannot draw from (``SlotSamplers.refuses``)."""
        self.check_fits(len(request.prompt), request.forcing)
        if not request.seeds:
            raise KvConfigError(f"request {request.key!r} asks for no samples")
        if request.sampling is not None:
            reason = refuses_sampling(self.sampling, self.sampler, request.sampling)
            if reason is not None:
                raise KvConfigError(reason, hint="sampler settings within the engine's (see docs/serve.md)")

    def check_fits(self, prompt_tokens: int, forcing: Forcing | None = None) -> None:
        """Refuse a prompt whose prompt + budget + reserve would not fit one slot's context."""
        f = forcing or self.forcing
        need = prompt_tokens + tokens_per_sample(f)
        if not self.require_fit:
            need = prompt_tokens + 1
        if need > self.runner.n_ctx_seq:
            raise KvConfigError(
                f"a prompt of {prompt_tokens} tokens + budget {f.budget_tokens} + reserve "
                f"{f.reserve_tokens} needs {need} cells per sample; each slot holds {self.runner.n_ctx_seq}",
                hint="a larger context per slot, or a smaller budget",
            )

    def run(
        self,
        requests: Iterable[Request] | Feed,
        *,
        on_finished: FinishCallback,
        on_token: TokenCallback | None = None,
        keep_cache: bool = False,
        on_step: Callable[[], None] | None = None,
    ) -> EngineStats:
        """Generate every request's samples; ``on_finished`` gets each request when its last sample ends.

        ``keep_cache`` keeps what sequence 0 held (and leaves its last sample there) so that a next
        prompt sharing a prefix decodes only the rest, as a chat's turns do. ``requests`` may be a
        :class:`Feed` (a server's; see the module docstring). ``on_step`` is called after each step.
        """
        self.keep_cache = keep_cache
        waiting: deque[_Live] = deque()
        feed = requests if isinstance(requests, Feed) else None
        source: Any = iter(requests) if not isinstance(requests, Feed) else None
        slots: list[_Slot | None] = [None] * self.n_slots
        live: dict[Hashable, _Live] = {}
        exhausted = False
        if not keep_cache:
            self.runner.clear()
        r = self.runner
        self.samplers = SlotSamplers(
            r.lib, r.ctx_handle, n_vocab=r.n_vocab, logits=r.logits_rows, on_gpu=device_is_gpu(r.cfg),
            sampling=self.sampling, where=self.sampler,
        )  # fmt: skip
        self.stats.sampler = self.samplers.where.value
        try:
            while True:
                if feed is not None:
                    self._service(feed, slots, waiting, live, on_finished)
                exhausted = self._admit(slots, waiting, live, source, exhausted, feed)
                if not any(slots):
                    if feed is None or feed.drained():
                        break
                    continue
                self._step(slots, live, on_finished, on_token)
                self._note_load(slots, live)
                if on_step is not None:
                    on_step()
        finally:
            self._note_load(slots, {})
            self.samplers.close()
            self.stats.sampler = self.samplers.where.value
        return self.stats

    # -- admission ---------------------------------------------------------------------------

    def _admit(
        self,
        slots: list[_Slot | None],
        waiting: deque[_Live],
        live: dict[Hashable, _Live],
        source: Any,
        exhausted: bool,
        feed: Feed | None = None,
    ) -> bool:
        free = [i for i, s in enumerate(slots) if s is None]
        while free:
            while not waiting and not exhausted:
                if feed is not None:  # wait only while nothing decodes
                    req = feed.take(wait=len(free) == len(slots))
                    if req is None:
                        break
                else:
                    req = next(source, None)
                    if req is None:
                        exhausted = True
                        break
                self.check_fits(len(req.prompt), req.forcing)
                if not req.seeds:
                    raise KvConfigError(f"request {req.key!r} asks for no samples")
                waiting.append(_Live(req, time.perf_counter()))
            if not waiting:
                break
            lr = waiting[0]
            n = min(len(lr.request.seeds) - lr.next_index, len(free))
            group, free = free[:n], free[n:]
            self._start(lr, group, slots)
            live[lr.request.key] = lr
            if lr.next_index >= len(lr.request.seeds):
                waiting.popleft()
        return exhausted

    def _start(self, lr: _Live, group: list[int], slots: list[_Slot | None]) -> None:
        """Put the prompt in the ``group`` slots (all but its last token; that one decodes next step)."""
        r = self.runner
        prompt = lr.request.prompt
        body = len(prompt) - 1
        sibling = next(iter(lr.slots), None)
        t0 = time.perf_counter()
        if sibling is not None:  # the prompt is in a live slot: copy it and cut back to the prompt
            first = group[0]
            r.seq_rm(first)
            r.seq_cp(sibling, first)
            r.seq_rm(first, body, -1)
        else:
            first = group[0]
            self.stats.n_prompt_decoded += r.prefill(first, prompt[:body])
        for s in group[1:]:
            r.seq_rm(s)
            r.seq_cp(first, s)
        self.stats.prompt_seconds += time.perf_counter() - t0
        for s in group:
            index = lr.next_index
            lr.next_index += 1
            self.samplers.start(s, lr.request.seeds[index], lr.request.sampling)
            slots[s] = _Slot(lr, lr.request.forcing or self.forcing, index, body, [prompt[-1]])
            lr.slots.add(s)

    # -- a feed's cancellations and cut -------------------------------------------------------

    def _service(
        self, feed: Feed, slots: list[_Slot | None], waiting: deque[_Live], live: dict[Hashable, _Live],
        cb: FinishCallback,
    ) -> None:  # fmt: skip
        """Drop the cancelled requests' slots; on a cut, end everything with finish "shutdown"."""
        for key in feed.take_cancelled():
            lr = live.pop(key, None) or next((w for w in waiting if w.request.key == key), None)
            if lr is None:
                continue
            for sid in sorted(lr.slots):
                slots[sid] = None
                self.samplers.stop(sid)
                self.runner.seq_rm(sid)
            lr.slots.clear()
            if lr in waiting:
                waiting.remove(lr)
            self.n_cancelled += 1
            self._note_load(slots, live)
        if not feed.cut:
            return
        for sid, s in enumerate(slots):
            if s is not None:
                self._finish(sid, slots, live, "shutdown", cb)
        ended = list(live.values()) + [w for w in waiting if w.request.key not in live]
        waiting.clear()
        ended += [_Live(r, time.perf_counter()) for r in feed.take_all()]
        for lr in ended:
            live.pop(lr.request.key, None)
            for i in range(len(lr.request.seeds)):
                lr.done.setdefault(i, Sample((), "", 0, "shutdown", True, ()))
            cb(Finished(lr.request.key, tuple(lr.done[i] for i in range(len(lr.request.seeds))), 0.0))
        self._note_load(slots, live)

    def _note_load(self, slots: list[_Slot | None], live: dict[Hashable, _Live]) -> None:
        busy = [s for s in slots if s is not None]
        self.slots_busy, self.kv_cells, self.running = len(busy), sum(s.pos for s in busy), len(live)

    # -- one step ----------------------------------------------------------------------------

    def _step(
        self,
        slots: list[_Slot | None],
        live: dict[Hashable, _Live],
        on_finished: FinishCallback,
        on_token: TokenCallback | None,
    ) -> None:
        r = self.runner
        st = self.stats
        t0 = time.perf_counter()
        self._compact(slots)
        rows: list[tuple[int, int, int, bool]] = []
        out_row: dict[int, tuple[int, int]] = {}  # slot -> (output row, batch row) of its logits
        for sid, s in enumerate(slots):  # sorted by slot: llama.cpp splits on gaps in sequence ids
            if s is None:
                continue
            n = len(s.pending)
            for j, tok in enumerate(s.pending):
                rows.append((tok, s.pos + j, sid, j == n - 1))
            s.pos += n
            s.pending = []
            out_row[sid] = (len(out_row), len(rows) - 1)
        st.max_live = max(st.max_live, len(out_row))
        if len(rows) > r.n_batch:  # cues injected into many slots at once (slots x the cue's tokens: bounds)
            rows = self._decode_ahead(rows)
            out_row = {sid: (o, o) for sid, (o, _) in out_row.items()}
        t1 = time.perf_counter()
        r.decode_rows(rows)  # returns once the graph is queued on a GPU
        t2 = time.perf_counter()
        r.synchronize()
        t3 = time.perf_counter()
        picks = self.samplers.pick(out_row)
        t4 = time.perf_counter()
        st.n_sampled += len(picks)
        for sid, tok in picks.items():
            s = slots[sid]
            assert s is not None
            finish = self._accept(s, tok, on_token)
            if finish is None and s.pos + len(s.pending) > r.n_ctx_seq:
                finish = "context"
            if finish is not None:
                self._finish(sid, slots, live, finish, on_finished)
        t5 = time.perf_counter() - self._callback_seconds
        self._callback_seconds = 0.0
        st.n_steps += 1
        st.step_seconds += t5 - t0
        st.build_seconds += t1 - t0
        st.submit_seconds += t2 - t1
        st.wait_seconds += t3 - t2
        st.sample_seconds += t4 - t3
        st.accept_seconds += t5 - t4

    def _compact(self, slots: list[_Slot | None]) -> None:
        """Move the highest live slots into free lower ones, so live sequence ids stay consecutive.

        llama.cpp splits a batch over several KV streams into micro-batches of consecutive sequence
        ids: live slots {0, 2, 5} cost three forward passes a step where {0, 1, 2} cost one. A move is
        one stream copy (``llama_memory_seq_cp``), done before the next decode.
        """
        r = self.runner
        while True:
            free = next((i for i, s in enumerate(slots) if s is None), None)
            high = next((i for i in range(len(slots) - 1, -1, -1) if slots[i] is not None), None)
            if free is None or high is None or high < free:
                return
            s = slots[high]
            assert s is not None
            r.seq_rm(free)
            r.seq_cp(high, free)
            r.seq_rm(high)
            self.samplers.move(high, free)
            slots[free], slots[high] = s, None
            s.request.slots.discard(high)
            s.request.slots.add(free)
            self.stats.n_moves += 1

    def _decode_ahead(self, rows: list[tuple[int, int, int, bool]]) -> list[tuple[int, int, int, bool]]:
        """A step of more rows than llama.cpp's n_batch (which it aborts on: GGML_ASSERT n_tokens_all <=
        n_batch): decode the rows without logits first, n_batch at a time, each slot's in order; return
        the rows with logits (one per live slot, at most n_seq_max <= n_batch), sent as the step."""
        r = self.runner
        ahead = [row for row in rows if not row[3]]
        for start in range(0, len(ahead), r.n_batch):
            r.decode_rows(ahead[start : start + r.n_batch])
        return [row for row in rows if row[3]]

    def _inject(self, s: _Slot, tokens: Sequence[int], on_token: TokenCallback | None) -> None:
        s.injected.append((len(s.tokens), tuple(tokens)))
        s.pending.extend(tokens)
        for t in tokens:
            s.special.add(len(s.tokens))
            s.tokens.append(t)
            if on_token is not None:
                piece = s.decoder.decode(self.runner.token_bytes(t, special=True))
                on_token(s.request.request.key, s.index, t, piece)

    def _accept(self, s: _Slot, tok: int, on_token: TokenCallback | None) -> str | None:
        """Take one sampled token through budget forcing; returns a finish reason or None."""
        f = s.forcing
        eog = self.runner.is_eog(tok) and not f.ignore_eog
        ends_thinking = f.end_think_token is not None and tok == f.end_think_token and not s.thinking_closed
        if s.after_cue < 0 and (eog or ends_thinking) and f.wait_tokens and s.n_budget < f.budget_tokens:
            self._inject(s, f.wait_tokens, on_token)  # --force-length: an early end becomes "Wait"
            s.n_budget += len(f.wait_tokens)
            return None if s.n_budget < f.budget_tokens else self._at_budget(s, on_token)
        if eog:
            return "eog"
        s.n_sampled += 1
        if ends_thinking:
            s.special.add(len(s.tokens))
        s.tokens.append(tok)
        if on_token is not None:  # streaming: decode as it goes (otherwise the text is made once, at the end)
            on_token(
                s.request.request.key,
                s.index,
                tok,
                s.decoder.decode(self.runner.token_bytes(tok, special=ends_thinking)),
            )
        s.pending.append(tok)
        if s.after_cue >= 0:
            s.after_cue += 1
            if f.stop_when_boxed:  # braces are ASCII: never part of a multi-byte UTF-8 sequence
                raw = self.runner.token_bytes(tok, special=ends_thinking)
                s.depth += raw.count(b"{") - raw.count(b"}")
                if s.depth <= 0:
                    return "boxed"
            return "reserve" if s.after_cue >= f.reserve_tokens else None
        if ends_thinking:
            s.thinking_closed = True
        s.n_budget += 1
        return self._at_budget(s, on_token) if s.n_budget >= f.budget_tokens else None

    def _at_budget(self, s: _Slot, on_token: TokenCallback | None) -> str | None:
        f = s.forcing
        s.cut = True
        cue = f.answer_cue_tokens if s.thinking_closed and f.answer_cue_tokens else f.cue_tokens
        if not cue or f.reserve_tokens <= 0:
            return "length"
        self._inject(s, cue, on_token)
        s.after_cue = 0
        return None

    def _finish(
        self, sid: int, slots: list[_Slot | None], live: dict[Hashable, _Live], finish: str, cb: FinishCallback
    ) -> None:
        s = slots[sid]
        assert s is not None
        slots[sid] = None
        self.samplers.stop(sid)
        lr = s.request
        lr.slots.discard(sid)
        if self.keep_cache and sid == 0:  # what the KV holds: everything but the undecoded pending tokens
            self.runner.note_cached((lr.request.prompt + tuple(s.tokens))[: s.pos])
        else:
            self.runner.seq_rm(sid)
        tb = self.runner.token_bytes
        text = b"".join(tb(t, special=i in s.special) for i, t in enumerate(s.tokens)).decode("utf-8", "replace")
        lr.done[s.index] = Sample(tuple(s.tokens), text, s.n_sampled, finish, s.cut, tuple(s.injected))
        if len(lr.done) == len(lr.request.seeds):
            del live[lr.request.key]
            samples = tuple(lr.done[i] for i in range(len(lr.request.seeds)))
            t0 = time.perf_counter()
            cb(Finished(lr.request.key, samples, t0 - lr.started))
            self._callback_seconds += time.perf_counter() - t0  # the caller's time, not the step's


def generate(
    runner: Runner,
    prompt_tokens: Sequence[int],
    max_tokens: int,
    *,
    n_seq: int = 1,
    sampling: Sampling | None = None,
    on_token: SequenceTokenCallback | None = None,
) -> Generation:
    """Sample ``n_seq`` continuations of one prompt: the engine with one request, no budget cue, and
    sequence 0's cache kept for the next prompt (a chat's earlier turns decode once).

    Each sequence s samples with seed ``sampling.seed + s``.
    """
    if not prompt_tokens:
        raise KvConfigError("the prompt is empty")
    if n_seq > runner.n_seq_max:
        raise KvConfigError(f"{n_seq} parallel sequences, but the context was made for {runner.n_seq_max}")
    if len(prompt_tokens) >= runner.n_ctx_seq:
        raise KvConfigError(
            f"the prompt has {len(prompt_tokens)} tokens; the context holds {runner.n_ctx_seq} per sequence",
            hint="use a larger --ctx or a shorter prompt",
        )
    sampling = sampling or Sampling()
    engine = Engine(runner, sampling=sampling, forcing=Forcing(budget_tokens=max_tokens), require_fit=False)
    seeds = tuple(sampling.seed + s for s in range(n_seq))
    done: list[Finished] = []
    cb = None if on_token is None else (lambda _key, index, tok, piece: on_token(index, tok, piece))
    st = engine.run([Request(0, tuple(prompt_tokens), seeds)], on_finished=done.append, on_token=cb, keep_cache=True)
    seqs = tuple(SequenceOutput(s.tokens, s.text, s.finish) for s in done[0].samples)
    n_eval = st.n_prompt_decoded + 1  # the prompt's last token decodes in the first step
    return Generation(seqs, len(prompt_tokens), n_eval, st.prompt_seconds, st.step_seconds)
