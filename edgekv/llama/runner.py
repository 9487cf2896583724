"""llama.cpp through llama-cpp-python's low-level API: the only module that loads models.

The high-level ``llama_cpp.Llama`` cannot set ``n_seq_max``, so the model and context are made
with ``llama_model_load_from_file`` / ``llama_init_from_model``. llama.cpp's log is captured with
``llama_log_set`` (the callback is kept alive and the previous one restored) and read into
:class:`LlamaBuffers` (``edgekv.llama.log``); a failure becomes
:class:`LlamaError` whose reason is the log's last error/warning line. ``build.dry_run`` asks llama.cpp
for the buffer sizes without allocating them (``no_alloc`` + ``LLAMA_LOAD_MODE_NONE``), which is
how the compute buffer is measured cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from edgekv.errors import GGUFError, KvConfigError, LlamaError
from edgekv.llama.build import check_cfg, check_path, check_threads, context_params, llama_lib, model_params
from edgekv.llama.log import LlamaBuffers, LlamaLog
from edgekv.llama.vocab import Vocab
from edgekv.logconfig import get_logger
from edgekv.plan.memory import RunConfig

log = get_logger(__name__)


class Runner(Vocab):
    """A loaded model and context. Use :func:`load`; close it (or use ``with``) to free memory."""

    def __init__(
        self,
        path: Path,
        cfg: RunConfig,
        *,
        n_batch: int | None,
        n_threads: int | None,
        verbose: bool,
        model: LoadedModel | None = None,
    ) -> None:
        check_cfg(cfg)
        check_threads(n_threads)
        self.path = path
        self.cfg = cfg
        self._lib = llama_cpp = llama_lib()
        self._log = LlamaLog(echo=verbose).__enter__()
        self._model: Any = None
        self._owns_model = model is None
        self._ctx: Any = None
        self._batch: Any = None
        try:
            if model is None:
                self._model = llama_cpp.llama_model_load_from_file(
                    str(path).encode(), model_params(llama_cpp, cfg, dry_run=False)
                )
                if not self._model:
                    raise LlamaError(f"llama.cpp cannot load {path.name}", reason=self._log.last_problem())
                self.released_bytes = give_back_gpu_pages(llama_cpp, path, cfg.n_gpu_layers, cfg.n_cpu_moe)
            else:
                self._model = model.handle
            cp = context_params(llama_cpp, cfg, n_batch=n_batch, n_threads=n_threads)
            self._ctx = llama_cpp.llama_init_from_model(self._model, cp)
            if not self._ctx:
                raise LlamaError("llama.cpp cannot create the context", reason=self._log.last_problem())
        except BaseException:
            self.close()
            raise
        self.buffers = self._log.buffers()
        self._log.keep_debug = False  # decode steps log DEBUG lines (see LlamaLog)
        if model is not None:  # the weights were logged when the shared model loaded
            self.buffers = replace(self.buffers, model=model.buffers.model)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self.n_batch = int(llama_cpp.llama_n_batch(self._ctx))
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(self._ctx))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._batch_cap = max(self.n_batch, self.n_seq_max)
        self._batch = llama_cpp.llama_batch_init(self._batch_cap, 0, 1)
        self._cached: list[int] = []  # tokens of sequence 0 held in the KV cache

    @property
    def lib(self) -> Any:
        """The llama_cpp module (its C functions)."""
        return self._lib

    @property
    def ctx_handle(self) -> Any:
        """The llama_context pointer."""
        return self._ctx

    # lifecycle
    def close(self) -> None:
        lib = self._lib
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lib.llama_free(self._ctx)
        self._ctx = None
        if self._model and self._owns_model:
            lib.llama_model_free(self._model)
        self._model = None
        self._log.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def log_lines(self) -> list[str]:
        return self._log.text()

    def current_buffers(self) -> LlamaBuffers:
        """``buffers`` with the compute buffers as llama.cpp last re-planned them (attaching backend
        samplers grows them); the weights and KV are what the load logged."""
        return replace(self.buffers, compute=self._log.buffers().compute)

    # decoding
    def clear(self) -> None:
        """Empty the KV cache (all sequences; the buffers are not zeroed, as llama-bench does)."""
        self._lib.llama_memory_clear(self._mem, False)
        self._cached = []

    def truncate(self, n_tokens: int, *, seq: int = 0) -> bool:
        """Drop positions >= ``n_tokens`` of ``seq``; False where the cache cannot (then clear it)."""
        self._cached = self._cached[:n_tokens] if seq == 0 else self._cached
        return bool(self._lib.llama_memory_seq_rm(self._mem, seq, n_tokens, -1))

    def synchronize(self) -> None:
        """Wait for the last decode's graph (``llama_decode`` returns once it is queued on a GPU)."""
        self._lib.llama_synchronize(self._ctx)

    def _fill(self, items: Sequence[tuple[int, int, int, bool]]) -> None:
        """Put (token, pos, seq, wants_logits) rows into the batch and decode it."""
        b = self._batch
        for i, (tok, pos, seq, out) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = out
        b.n_tokens = len(items)
        rc = self._lib.llama_decode(self._ctx, b)
        if rc != 0:
            what = {1: "no free KV cache slot (the context is full)", 2: "aborted", -1: "invalid batch"}
            raise LlamaError(f"llama_decode failed ({rc}: {what.get(rc, 'fatal')})", reason=self._log.last_problem())

    def decode(self, tokens: Sequence[int], *, pos0: int = 0, seq: int = 0, logits_last: bool = True) -> None:
        """Decode ``tokens`` at positions ``pos0...`` of sequence ``seq``, n_batch at a time."""
        n = len(tokens)
        for start in range(0, n, self._batch_cap):
            chunk = tokens[start : start + self._batch_cap]
            last = start + len(chunk) == n
            rows = [
                (t, pos0 + start + i, seq, logits_last and last and i == len(chunk) - 1) for i, t in enumerate(chunk)
            ]
            self._fill(rows)

    def decode_one(self, token: int, pos: int, *, seq: int = 0) -> None:
        """One token with logits: the decode step benchmarks time (as llama-bench's tg)."""
        b = self._batch
        b.token[0] = token
        b.pos[0] = pos
        b.n_seq_id[0] = 1
        b.seq_id[0][0] = seq
        b.logits[0] = 1
        b.n_tokens = 1
        rc = self._lib.llama_decode(self._ctx, b)
        if rc != 0:
            raise LlamaError(f"llama_decode failed ({rc})", reason=self._log.last_problem())

    # primitives of the batched engine (edgekv.llama.batch)
    def decode_rows(self, rows: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode (token, pos, seq, wants_logits) rows in one ``llama_decode``; the batch grows to fit."""
        if len(rows) > self._batch_cap:
            self._lib.llama_batch_free(self._batch)
            self._batch_cap = len(rows)
            self._batch = self._lib.llama_batch_init(self._batch_cap, 0, 1)
        self._fill(rows)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Drop positions [p0, p1) of ``seq`` (-1: open ends) from the KV cache."""
        if seq == 0:
            self._cached = []
        return bool(self._lib.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def seq_cp(self, src: int, dst: int) -> None:
        """Copy all of ``src``'s cells to ``dst`` (a whole-stream copy without a unified cache)."""
        if dst == 0:
            self._cached = []
        self._lib.llama_memory_seq_cp(self._mem, src, dst, -1, -1)

    def logits_rows(self, n_rows: int) -> Any:
        """The logits of the last decode's ``n_rows`` output rows as an (n_rows, n_vocab) numpy view."""
        import numpy as np

        ptr = self._lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def prefill(self, seq: int, tokens: Sequence[int]) -> int:
        """Put ``tokens`` at positions 0.. of ``seq`` without logits; returns how many were decoded.

        Sequence 0 keeps what it shares with the tokens it held before (a chat's earlier turns).
        """
        keep = 0
        if seq == 0:
            limit = min(len(self._cached), len(tokens))
            while keep < limit and self._cached[keep] == tokens[keep]:
                keep += 1
        if not (keep and self._lib.llama_memory_seq_rm(self._mem, seq, keep, -1)):
            keep = 0
            self._lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        if seq == 0:
            self._cached = []
        rest = list(tokens[keep:])
        for start in range(0, len(rest), self.n_batch):
            chunk = rest[start : start + self.n_batch]
            self._fill([(t, keep + start + i, seq, False) for i, t in enumerate(chunk)])
        if seq == 0:
            self._cached = list(tokens)
        return len(rest)

    def note_cached(self, tokens: Sequence[int]) -> None:
        """Record what sequence 0 holds now (so the next prompt reuses the common prefix)."""
        self._cached = list(tokens)


def give_back_gpu_pages(llama_cpp: Any, path: Path, n_gpu_layers: int, n_cpu_moe: int) -> int:
    """After a load: the mapped pages of the tensors now on the GPU, given back (edgekv/llama/mapping.py);
    never fails a run (0 when anything goes wrong). Only with experts in RAM: otherwise the tensors llama.cpp
    keeps in host memory (token_embd, the first blocks under -ngl) lie in one run of the file, and
    llama.cpp unmaps the rest itself, so the header is not read again."""
    if n_gpu_layers == 0 or n_cpu_moe == 0 or not llama_cpp.llama_supports_gpu_offload():
        return 0
    from edgekv.llama.mapping import release_gpu_tensors

    try:
        return release_gpu_tensors(path, n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe)
    except (OSError, ValueError, GGUFError) as e:
        log.debug("mapped GPU tensors of %s not given back: %s", path.name, e)
        return 0


class LoadedModel(Vocab):
    """A GGUF loaded once: contexts for several KV types and budgets share its weights (a sweep
    loads each file once). ``runner(cfg)`` makes a context; close the runners, then this."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_gpu_layers: int = -1,
        vocab_only: bool = False,
        verbose: bool = False,
        n_cpu_moe: int = 0,
    ) -> None:
        self.path = check_path(path)
        self.n_gpu_layers = n_gpu_layers
        self.n_cpu_moe = n_cpu_moe
        self.vocab_only = vocab_only  # tokenizer and chat template only (no weights; no contexts)
        self._lib = llama_cpp = llama_lib()
        self._verbose = verbose
        with LlamaLog(echo=verbose) as cap:
            cfg = RunConfig(n_ctx=KV_MIN_CTX, n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe)
            params = model_params(llama_cpp, cfg, dry_run=False)
            params.vocab_only = vocab_only
            self.handle: Any = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
            if not self.handle:
                raise LlamaError(f"llama.cpp cannot load {self.path.name}", reason=cap.last_problem())
        self.released_bytes = 0 if vocab_only else give_back_gpu_pages(llama_cpp, self.path, n_gpu_layers, n_cpu_moe)
        self.buffers = cap.buffers()
        self._log = cap
        self._model = self.handle
        self._vocab = llama_cpp.llama_model_get_vocab(self.handle)

    def runner(self, cfg: RunConfig, *, n_batch: int | None = None, n_threads: int | None = None) -> Runner:
        """A context over this model; ``cfg.n_gpu_layers`` must be the one the model was loaded with."""
        if not self.handle or self.vocab_only:
            raise LlamaError(f"{self.path.name} was {'loaded vocabulary-only' if self.handle else 'closed'}")
        if cfg.n_cpu_moe != self.n_cpu_moe:
            raise KvConfigError(
                f"the model was loaded with the experts of {self.n_cpu_moe} blocks in RAM, the context asks for "
                f"{cfg.n_cpu_moe}"
            )
        if cfg.n_gpu_layers != self.n_gpu_layers:
            raise KvConfigError(
                f"the model was loaded with {self.n_gpu_layers} GPU layers, the context asks for {cfg.n_gpu_layers}"
            )
        return Runner(self.path, cfg, n_batch=n_batch, n_threads=n_threads, verbose=self._verbose, model=self)

    def close(self) -> None:
        if self.handle:
            self._lib.llama_model_free(self.handle)
        self.handle = self._model = self._vocab = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


KV_MIN_CTX = 256


def load(
    path: str | os.PathLike[str],
    cfg: RunConfig,
    *,
    n_batch: int | None = None,
    n_threads: int | None = None,
    verbose: bool = False,
) -> Runner:
    """Load a GGUF and make its context; raises LlamaError with llama.cpp's reason on failure."""
    return Runner(check_path(path), cfg, n_batch=n_batch, n_threads=n_threads, verbose=verbose)
