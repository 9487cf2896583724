"""Sampling for the batched engine: one llama.cpp sampler chain per sample, run where the logits are.

Every sample has its own chain (top-k, top-p, min-p, temperature, dist with the sample's seed; greedy
when asked), so its tokens do not depend on which other samples share the batch. Where a chain runs
is a setting (``where``, a :class:`SamplerPlace`):

* ``"backend"``: llama.cpp's backend sampling (``llama_set_sampler``, marked EXPERIMENTAL in this
  llama.cpp). A live slot's chain is attached to its sequence id and becomes part of the decode graph,
  on the device that holds the output layer; only the sampled token comes back
  (``llama_get_sampled_token_ith``), so no 152k-logit row is copied to the host or walked there.
  The dist sampler draws its uniform number on the host, from the chain's own generator, only in a
  step where its sequence has an output row, so a sample's draws stay its own. A chain is attached
  when a sample starts, detached when it ends (an attached chain of an empty slot would still run in
  every step's graph), and moved with a clone (generator state included) when the engine moves a
  slot down; each change makes llama.cpp re-plan the graph once.
* ``"host"`` (the default, ``"auto"``): the candidates of every live row cut in one vectorised numpy
  pass over the logits llama.cpp copied back (``top_k_candidates``: the max of each of ~2.4k
  groups of 64 logits, the members of the k best groups, 64 k candidates that hold the row's top
  k), then each sample's llama.cpp chain (top-k, top-p, min-p, temperature, dist with its seed)
  over its row's candidates, from one preallocated ``llama_token_data`` buffer: the chain's own
  top-k makes the exact cut, so the tokens are those of the chain over the whole row (tested).
  On the H200 machine's host, Qwen's 152k vocabulary: 0.13 ms a step for 1 row and 0.97 ms for
  16, where ``"full"`` takes 0.28 and 2.79. Greedy is one ``argmax`` over all rows (llama.cpp's
  greedy: the first maximum). Without a top-k (``top_k <= 0``) the chain needs the whole row:
  ``"full"``; so does a single row when llama.cpp decodes on the CPU (``cut_min_rows``).
* ``"full"``: ``llama_sampler_sample`` per live slot per step: the chain in C over the full
  vocabulary row (it fills 152k candidates and reads the row, the sampled token, probabilities,
  logits and candidates, each read a ``llama_synchronize``), the rows spread over up to 8 host threads (at
  most half the cores, each given >= 300k logits; ctypes releases the GIL; the first row is
  sampled on the calling thread, since llama.cpp puts the output rows in order on the first read
  after a decode). The reference the others are tested against.
* ``"auto"`` (the default) is ``"host"``. The device paths cost memory: llama.cpp reserves its
  compute buffer for the worst case, and with samplers attached the graph holds a second copy of
  the logits of every output row (``ggml_pad`` of ``t_logits`` in ``build_sampling``):
  4 x (n_ubatch + 1) x n_vocab bytes more, 513 MiB for gemma-3's 262k vocabulary and 297 MiB for
  Qwen's 152k at n_ubatch 512. The memory model counts it when they are chosen
  (``RunConfig.device_sampling``, ``memory.sampling_buffer_bytes``: ``bench --parallel`` and
  ``eval``'s pre-flight size for it; equal to llama.cpp's log, tested), but a plan made for a card
  would give those bytes to the answer's tokens, so they are a choice (``--sampler backend|split``).

The two device paths draw the same uniform numbers but compute the softmax/cumulative sums in a
different order, so a seed gives the same tokens within a path, not across paths; results record
which path ran.
"""

from __future__ import annotations

import ctypes
import enum
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edgekv.errors import KvConfigError, LlamaError, parse_choice


class SamplerPlace(str, enum.Enum):
    """Where the sampler chains run (``--sampler``; the module docstring says how each works)."""

    AUTO = "auto"
    HOST = "host"
    FULL = "full"
    BACKEND = "backend"
    SPLIT = "split"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> SamplerPlace:
        return parse_choice(cls, text, text=text, what="sampler place")

    @property
    def on_device(self) -> bool:
        """The chains are attached to the decode graph, whose compute buffer then holds a second copy
        of the logits: the memory model counts it (``RunConfig.device_sampling``)."""
        return self in (SamplerPlace.BACKEND, SamplerPlace.SPLIT)


THREADS_ENV = "EDGEKV_SAMPLER_THREADS"  # "full" sampling threads, overriding the default below
MAX_SAMPLER_THREADS = 8  # host sampling threads (a row costs 0.1-0.6 ms; more threads cost more to start)
# Logits per sampling thread: a thread's wake-up and hand-back cost ~0.05-0.4 ms (more on a busy
# machine), a row of 150k logits ~0.2 ms in llama.cpp's chain; below this much work per thread the
# rows are sampled on the calling thread (a 16-row step of a 512-token vocabulary went from
# 0.2 to 2.4 ms with 8 threads on a busy 2-core box).
LOGITS_PER_THREAD = 300_000
CUT_ROWS_PER_THREAD = 4  # "host": rows a part gets at least (a thread's hand-off costs ~0.05 ms)


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampler settings; the defaults are Qwen3's for thinking mode (its model card)."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 0
    greedy: bool = False

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature <= 0


def new_chain(lib: Any, sampling: Sampling, seed: int) -> Any:
    """A llama.cpp sampler chain for one sample (free it with ``lib.llama_sampler_free``)."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    if sampling.is_greedy:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain
    if sampling.top_k > 0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
    if sampling.top_p < 1.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
    if sampling.min_p > 0.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(sampling.min_p, 1))
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(sampling.temperature))
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain


def resolve_place(where: SamplerPlace, sampling: Sampling) -> SamplerPlace:
    """``auto`` made concrete for these settings (see the module docstring)."""
    where = SamplerPlace.parse(where)
    if where is SamplerPlace.SPLIT:
        if sampling.is_greedy:
            return SamplerPlace.BACKEND
        if sampling.top_k <= 0:
            raise KvConfigError("the split path cuts the top k first: it needs top_k > 0", hint="--sampler host")
    if where in (SamplerPlace.AUTO, SamplerPlace.HOST):
        return SamplerPlace.HOST if sampling.is_greedy or sampling.top_k > 0 else SamplerPlace.FULL
    return where


def refuses_sampling(engine: Sampling, where: SamplerPlace, request: Sampling) -> str | None:
    """Why a request's own sampler settings cannot run in an engine made for ``engine``'s, or None.

    Each sample has its own chain, so temperature, top-p, min-p and greedy may differ per request.
    What the engine's path shares is the cut: ``host`` and ``split`` keep each row's ``engine.top_k``
    best candidates (a request's top-k must be 1..that), and an engine made greedy takes the argmax of
    every row (its requests must be greedy too).
    """
    place = resolve_place(where, engine)
    if engine.is_greedy:
        return None if request.is_greedy else "this server decodes greedily (started with --greedy or temperature 0)"
    if request.is_greedy or place in (SamplerPlace.FULL, SamplerPlace.BACKEND):
        return None
    if not 1 <= request.top_k <= engine.top_k:
        return f"top_k must be 1..{engine.top_k} here (the server's --top-k), not {request.top_k}"
    return None


# top_k_candidates: logits are folded into GROUP_ROWS x (n_vocab // GROUP_ROWS) and each column's max
# kept; 64 measured fastest of 32/64/128 (gemma-3 and Qwen vocabularies, 1 to 16 rows).
GROUP_ROWS = 64
_TOKEN_DATA = [("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]  # llama_token_data


def candidates_width(n_vocab: int, k: int) -> int:
    """How many candidates ``top_k_candidates`` gives a row of ``n_vocab`` logits."""
    w = n_vocab // GROUP_ROWS
    return n_vocab if w < 4 * k else k * GROUP_ROWS + n_vocab - w * GROUP_ROWS


def top_k_candidates(logits: Any, k: int) -> tuple[Any, Any]:
    """Candidates of every row of ``logits`` (n, n_vocab) that include its ``k`` largest logits:
    (ids, values), each (n, m) with k <= m, in no order. The sampler chain's own top-k (in C, over
    m ~ 64 k candidates instead of the whole row) then makes the exact cut.

    One vectorised pass over the logits: the vocabulary is split into groups of ``GROUP_ROWS``
    tokens (``j, j + w, j + 2w, ...`` for ``w = n_vocab // GROUP_ROWS``, so the group maxima are one
    reduction over rows of ``w``); the candidates are the members of the k groups with the largest
    maxima, and the vocabulary's tail past ``GROUP_ROWS * w``. Why they hold the top k: the k kept
    maxima are k distinct logits, and every logit outside the kept groups is at most the smallest
    of them, so it cannot displace any of the k best (a tie at the k-th value may keep other tied
    tokens; llama.cpp's own top-k breaks ties in no defined order either). A small vocabulary
    (under 4 k groups) is passed whole.
    """
    import numpy as np

    n, n_vocab = logits.shape
    w = n_vocab // GROUP_ROWS
    if w < 4 * k:
        return np.broadcast_to(np.arange(n_vocab, dtype=np.int32), (n, n_vocab)), logits
    main = w * GROUP_ROWS
    maxima = logits[:, :main].reshape(n, GROUP_ROWS, w).max(axis=1)
    best = np.argpartition(maxima, w - k, axis=1)[:, w - k :]  # (n, k) group columns
    ids = (np.arange(0, main, w, dtype=np.int32)[None, :, None] + best[:, None, :].astype(np.int32)).reshape(n, -1)
    if main < n_vocab:
        tail = np.broadcast_to(np.arange(main, n_vocab, dtype=np.int32), (n, n_vocab - main))
        ids = np.concatenate([ids, tail], axis=1)
    return ids, np.take_along_axis(logits, ids, axis=1)


class _CandidateRows:
    """One ``llama_token_data`` buffer of ``rows`` x ``k`` candidates and a ``llama_token_data_array``
    per row pointing into it, made once per engine run (a ctypes array per row per step cost ~20 us)."""

    def __init__(self, lib: Any, rows: int, k: int) -> None:
        import numpy as np

        self.k = k
        self.data = (lib.llama_token_data * (rows * k))()
        self.view = np.frombuffer(self.data, dtype=np.dtype(_TOKEN_DATA), count=rows * k).reshape(rows, k)
        base, size = ctypes.addressof(self.data), ctypes.sizeof(lib.llama_token_data)
        ptr = ctypes.POINTER(lib.llama_token_data)
        self.arrays = [
            lib.llama_token_data_array(ctypes.cast(base + i * k * size, ptr), k, -1, True) for i in range(rows)
        ]
        self.refs = [ctypes.byref(a) for a in self.arrays]


class SlotSamplers:
    """The chains of the engine's slots and the one call per step that samples every live slot.

    What it reads of the context is passed in: llama_cpp (``lib``), the llama_context pointer
    (``ctx``), the vocabulary size, ``logits(n_rows)`` (the last decode's output rows as an
    (n_rows, n_vocab) array) and whether llama.cpp decodes on a GPU (``on_gpu``).
    """

    def __init__(
        self,
        lib: Any,
        ctx: Any,
        *,
        n_vocab: int,
        logits: Callable[[int], Any],
        on_gpu: bool,
        sampling: Sampling,
        where: SamplerPlace = SamplerPlace.AUTO,
    ) -> None:
        self.lib = lib
        self.ctx = ctx
        self.n_vocab = n_vocab
        self.logits = logits
        self.sampling = sampling
        self.where = resolve_place(where, sampling)
        self._chains: dict[int, Any] = {}  # each slot's full chain (on the device for "backend")
        self._device: dict[int, Any] = {}  # "split": each slot's device chain (top-k alone)
        # "full": half the cores: on a 2-core box threads never paid (gemma-3, G = 4: 1.8 vs 1.6 ms a step)
        self.n_threads = min(MAX_SAMPLER_THREADS, (os.cpu_count() or 1) // 2)
        # "host": the cut on the calling thread; in parts on threads only when asked (H200 host, Qwen3-4B
        # shape, 16 rows: 1.00 ms a step on one thread, 1.95 ms in 4 parts: the logits are read from
        # memory once either way, and the hand-offs cost more than the parts save).
        self.cut_threads = 1
        threads = os.environ.get(THREADS_ENV)  # a benchmark's setting (bench/gpu_batched.py): sets both
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise KvConfigError(f"{THREADS_ENV}={threads!r} is not a thread count", hint="a whole number >= 1")
            self.n_threads = self.cut_threads = int(threads)
        self._pool: ThreadPoolExecutor | None = None
        self._rows: _CandidateRows | None = None  # "host": the candidates' buffer
        # "host" samples a single row with the full chain where llama.cpp decodes on the CPU: the decode
        # leaves the caches cold and the cut's dozen numpy calls then cost more than the C chain over
        # the row (one row on the 2-core box: Qwen's vocabulary 0.36 vs 0.24 ms, gemma-3's 0.40 vs 0.38;
        # 4 rows: 0.55 vs 0.84, 0.65 vs 1.62). Both give the same tokens.
        self.cut_min_rows = 1 if on_gpu else 2

    # slot lifecycle ---------------------------------------------------------------------------
    def start(self, slot: int, seed: int, sampling: Sampling | None = None) -> None:
        """A new sample in ``slot``, with its own chain seeded by ``seed`` (of ``sampling``'s settings where
        given: a request's own, within what ``refuses_sampling`` allows)."""
        self.stop(slot)
        chain = new_chain(self.lib, sampling or self.sampling, seed)
        self._chains[slot] = chain
        device = None
        if self.where is SamplerPlace.SPLIT:
            device = self.lib.llama_sampler_chain_init(self.lib.llama_sampler_chain_default_params())
            self.lib.llama_sampler_chain_add(device, self.lib.llama_sampler_init_top_k(self.sampling.top_k))
            self._device[slot] = device
        elif self.where is SamplerPlace.BACKEND:
            device = chain
        if device is not None and not self._attach(slot, device):  # llama.cpp refuses only a tensor split
            raise LlamaError("llama.cpp cannot run the sampler chain in the decode graph", hint="--sampler host")

    def move(self, src: int, dst: int) -> None:
        """The sample in ``src`` moves to ``dst`` (the engine compacts its slots)."""
        chain = self._chains.pop(src)
        device = self._device.pop(src, None)
        self.stop(dst)
        if self.where is SamplerPlace.BACKEND:  # a chain is set up for one sequence once: attach a clone
            chain = self._reattach(src, dst, chain)
        elif device is not None:
            self._device[dst] = self._reattach(src, dst, device)
        self._chains[dst] = chain

    def stop(self, slot: int) -> None:
        """The sample in ``slot`` ended: detach and free its chain."""
        chain = self._chains.pop(slot, None)
        if chain is None:
            return
        if self.where.on_device:
            self._attach(slot, None)
        device = self._device.pop(slot, None)
        if device is not None:
            self.lib.llama_sampler_free(device)
        self.lib.llama_sampler_free(chain)

    def close(self) -> None:
        for slot in list(self._chains):
            self.stop(slot)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(self.n_threads, self.cut_threads), thread_name_prefix="edgekv-sampler")
        return self._pool

    def _attach(self, slot: int, chain: Any) -> bool:
        return bool(self.lib.llama_set_sampler(self.ctx, slot, chain))

    def _reattach(self, src: int, dst: int, chain: Any) -> Any:
        """Detach ``chain`` from ``src``, attach a clone of it (its state too) to ``dst``; the clone."""
        self._attach(src, None)
        clone = self.lib.llama_sampler_clone(chain)
        self.lib.llama_sampler_free(chain)
        self._attach(dst, clone)
        return clone

    # one step ---------------------------------------------------------------------------------
    def pick(self, out_row: dict[int, tuple[int, int]]) -> dict[int, int]:
        """The next token of every live slot; ``out_row``: slot -> (output row, batch row)."""
        lib, ctx = self.lib, self.ctx
        picks: dict[int, int] = {}
        if self.where is SamplerPlace.BACKEND:
            for sid, (_, batch_row) in out_row.items():
                tok = int(lib.llama_get_sampled_token_ith(ctx, batch_row))
                if tok < 0:
                    raise LlamaError(f"llama.cpp sampled no token for sequence {sid}", hint="try --sampler host")
                lib.llama_sampler_accept(self._chains[sid], tok)  # commits the dist draw (generator state)
                picks[sid] = tok
            return picks
        if self.where is SamplerPlace.FULL:
            return self._pick_full(out_row)
        if self.where is SamplerPlace.HOST:
            return self._pick_host(out_row)
        import numpy as np

        for sid, (_, batch_row) in out_row.items():  # split
            n = int(lib.llama_get_sampled_candidates_count_ith(ctx, batch_row))
            if n <= 0 or int(lib.llama_get_sampled_logits_count_ith(ctx, batch_row)) != n:
                raise LlamaError(f"llama.cpp returned no top-k candidates for sequence {sid}", hint="--sampler host")
            ids = np.ctypeslib.as_array(lib.llama_get_sampled_candidates_ith(ctx, batch_row), shape=(n,))
            logits = np.ctypeslib.as_array(lib.llama_get_sampled_logits_ith(ctx, batch_row), shape=(n,))
            picks[sid] = sample_candidates(lib, self._chains[sid], ids, logits, ordered=False)
        return picks

    def _pick_host(self, out_row: dict[int, tuple[int, int]]) -> dict[int, int]:
        """The top-k candidates of every row (``top_k_candidates``), then each sample's chain (whose
        top-k makes the exact cut) on its row's; rows in ``cut_threads`` contiguous parts at once."""
        import numpy as np

        logits = self.logits(len(out_row))  # output rows are in slot order (also for _pick_full)
        if self.sampling.is_greedy:
            best = np.argmax(logits, axis=1).tolist()
            return {sid: best[row] for sid, (row, _) in out_row.items()}
        n = len(out_row)
        if n < self.cut_min_rows:
            return self._pick_full(out_row)
        m = candidates_width(self.n_vocab, self.sampling.top_k)
        if self._rows is None or len(self._rows.arrays) < n or self._rows.k != m:
            self._rows = _CandidateRows(self.lib, max(n, len(self._chains)), m)
        by_row = [sid for sid, _ in sorted(out_row.items(), key=lambda item: item[1][0])]
        parts = min(self.cut_threads, n // CUT_ROWS_PER_THREAD)
        if parts <= 1:
            return dict(self._cut(logits, by_row, 0, n))
        bounds = [n * i // parts for i in range(parts + 1)]
        picks: dict[int, int] = {}
        for part in self._executor().map(lambda i: self._cut(logits, by_row, bounds[i], bounds[i + 1]), range(parts)):
            picks.update(part)
        return {sid: picks[sid] for sid in out_row}

    def _cut(self, logits: Any, by_row: list[int], a: int, b: int) -> list[tuple[int, int]]:
        """Rows ``a:b``: their candidates into the buffer, then each row's chain (the C calls and numpy's
        passes release the GIL, so parts run side by side)."""
        rows = self._rows
        assert rows is not None
        ids, vals = top_k_candidates(logits[a:b], self.sampling.top_k)
        rows.view["id"][a:b] = ids
        rows.view["logit"][a:b] = vals
        apply, accept = self.lib.llama_sampler_apply, self.lib.llama_sampler_accept
        arrays, refs, m = rows.arrays, rows.refs, rows.k
        out = []
        for row in range(a, b):
            arr, chain = arrays[row], self._chains[by_row[row]]
            arr.size, arr.selected, arr.sorted = m, -1, False
            apply(chain, refs[row])
            tok = arr.data[arr.selected].id
            accept(chain, tok)
            out.append((by_row[row], tok))
        return out

    def _pick_full(self, out_row: dict[int, tuple[int, int]]) -> dict[int, int]:
        lib, ctx, chains = self.lib, self.ctx, self._chains
        rows = [(sid, chains[sid], batch_row) for sid, (_, batch_row) in out_row.items()]

        def run(part: list[tuple[int, Any, int]]) -> list[tuple[int, int]]:
            return [(sid, int(lib.llama_sampler_sample(chain, ctx, row))) for sid, chain, row in part]

        picks = dict(run(rows[:1]))  # the first read after a decode reorders llama.cpp's output rows
        rest = rows[1:]
        n = min(self.n_threads, len(rest), len(rest) * self.n_vocab // LOGITS_PER_THREAD)
        if n <= 1:
            picks.update(run(rest))
            return picks
        for part in self._executor().map(run, [rest[i::n] for i in range(n)]):
            picks.update(part)
        return {sid: picks[sid] for sid in out_row}  # in slot order, as the engine accepts them


def sample_candidates(lib: Any, chain: Any, ids: Any, logits: Any, *, ordered: bool = True) -> int:
    """Apply ``chain`` to candidates and accept the pick.

    ``ids``/``logits``: sequences of the same length (numpy arrays, lists, or ctypes pointers when
    ``n`` is given through a slice); ``ordered``: best first. The ``llama_token_data`` rows are
    written through one numpy view (a Python loop over 20 fields x 3 cost ~20 us a row).
    """
    import numpy as np

    n = len(ids)
    data = (lib.llama_token_data * n)()
    view = np.frombuffer(data, dtype=np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]), count=n)
    view["id"] = ids
    view["logit"] = logits
    arr = lib.llama_token_data_array(data, n, -1, ordered)
    lib.llama_sampler_apply(chain, ctypes.byref(arr))
    tok = int(view["id"][arr.selected])
    lib.llama_sampler_accept(chain, tok)
    return tok
