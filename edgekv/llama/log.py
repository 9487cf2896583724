"""llama.cpp's log: capture it (:class:`LlamaLog`, the one capture: loading, contexts, quantizing)
and read its buffer sizes (:func:`parse_buffers`).

llama_cpp is imported inside the functions that call it, never at module level, so the parsing can
be used (and tested) without llama-cpp-python.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekv.interrupt import native_callback
from edgekv.logconfig import get_logger
from edgekv.units import MIB

llama_log = get_logger("edgekv.llama")  # llama.cpp's own lines, shown with -vv

# enum ggml_log_level (ggml.h): NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues a line)
_GGML_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_LEVEL_DEBUG, _LEVEL_WARN, _LEVEL_ERROR, _LEVEL_CONT = 1, 3, 4, 5


def _llama_cpp() -> Any:
    """llama_cpp, for the log callback; ``build.llama_lib`` has imported and initialised it already."""
    import llama_cpp

    return llama_cpp


@dataclass(frozen=True, slots=True)
class KvCacheLog:
    """One ``llama_kv_cache: size = ...`` line (an iSWA model logs one per layer kind)."""

    swa: bool | None  # None when the model has one kind of attention layer
    cells: int
    layers: int
    n_seq: int
    type_k: str
    type_v: str
    k_mib: float
    v_mib: float

    @property
    def k_bytes(self) -> int:
        return round(self.k_mib * MIB)

    @property
    def v_bytes(self) -> int:
        return round(self.v_mib * MIB)


def is_host_buffer(name: str) -> bool:
    """CPU, CPU_Mapped, CPU_REPACK, CUDA_Host, ...: buffers in host memory, not on a GPU."""
    return name.startswith("CPU") or name.endswith("_Host")


@dataclass(frozen=True, slots=True)
class LlamaBuffers:
    """Buffer sizes llama.cpp logged, in bytes, keyed by buffer name (CUDA0, CPU_Mapped, ...).

    The log prints MiB with two decimals, so each value is exact to 0.01 MiB. In a dry run the
    model and KV buffers are dummies (0 bytes) but ``kv_caches`` and ``compute`` are real.
    """

    model: Mapping[str, int] = field(default_factory=dict)
    kv: Mapping[str, int] = field(default_factory=dict)
    compute: Mapping[str, int] = field(default_factory=dict)
    output: Mapping[str, int] = field(default_factory=dict)
    kv_caches: tuple[KvCacheLog, ...] = ()
    flash_attn: bool | None = None
    n_ctx: int | None = None
    n_ctx_seq: int | None = None
    dry_run: bool = False

    @property
    def repack(self) -> int:
        return sum(v for k, v in self.model.items() if k.endswith("_REPACK"))

    @property
    def model_device(self) -> int:
        """Model bytes on GPUs."""
        return sum(v for k, v in self.model.items() if not is_host_buffer(k))

    @property
    def model_host(self) -> int:
        """Model bytes in host memory, without repacked copies."""
        return sum(v for k, v in self.model.items() if is_host_buffer(k) and not k.endswith("_REPACK"))

    @property
    def kv_k(self) -> int:
        return sum(c.k_bytes for c in self.kv_caches)

    @property
    def kv_v(self) -> int:
        return sum(c.v_bytes for c in self.kv_caches)

    @property
    def kv_total(self) -> int:
        return self.kv_k + self.kv_v

    @property
    def compute_device(self) -> int:
        return sum(v for k, v in self.compute.items() if not is_host_buffer(k))

    @property
    def compute_host(self) -> int:
        return sum(v for k, v in self.compute.items() if is_host_buffer(k))

    @property
    def on_gpu(self) -> bool:
        return any(not is_host_buffer(k) for part in (self.model, self.kv, self.compute) for k in part)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": dict(self.model),
            "kv": dict(self.kv),
            "kv_k": self.kv_k,
            "kv_v": self.kv_v,
            "compute": dict(self.compute),
            "output": dict(self.output),
            "repack": self.repack,
            "flash_attn": self.flash_attn,
            "dry_run": self.dry_run,
        }


_MIB = r"([\d.]+) MiB"
_RE_MODEL = re.compile(rf"(\S+) model buffer size =\s+{_MIB}")
_RE_KV_BUF = re.compile(rf"(\S+) KV buffer size =\s+{_MIB}")
_RE_COMPUTE = re.compile(rf"(\S+) compute buffer size =\s+{_MIB}")
_RE_OUTPUT = re.compile(rf"(\S+)\s+output buffer size =\s+{_MIB}")
_RE_KV_SIZE = re.compile(
    rf"llama_kv_cache: size =\s+{_MIB} \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/\d+ seqs\), "
    rf"K \((\w+)\):\s+{_MIB}, V \((\w+)\):\s+{_MIB}"
)
_RE_KV_KIND = re.compile(r"llama_kv_cache_iswa: creating\s+(non-SWA|SWA) KV cache")
_RE_FA = re.compile(r"llama_context: flash_attn\s+= (\w+)")
_RE_CTX = re.compile(r"llama_context: (n_ctx|n_ctx_seq)\s+= (\d+)")


def parse_buffers(lines: Sequence[str], *, dry_run: bool = False) -> LlamaBuffers:
    """Read llama.cpp's buffer-size lines (see ../shared/llama-cpp-memory.md for their forms)."""
    model: dict[str, int] = {}
    kv: dict[str, int] = {}
    compute: dict[str, int] = {}
    output: dict[str, int] = {}
    caches: list[KvCacheLog] = []
    swa: bool | None = None
    fa: bool | None = None
    ctx: dict[str, int] = {}

    def add(d: dict[str, int], name: str, mib: str) -> None:
        d[name] = d.get(name, 0) + round(float(mib) * MIB)

    for line in lines:
        if m := _RE_KV_SIZE.search(line):
            caches.append(KvCacheLog(swa, int(m[2]), int(m[3]), int(m[4]), m[5], m[7], float(m[6]), float(m[8])))
        elif m := _RE_MODEL.search(line):
            add(model, m[1], m[2])
        elif m := _RE_KV_BUF.search(line):
            add(kv, m[1], m[2])
        elif m := _RE_COMPUTE.search(line):
            compute[m[1]] = round(float(m[2]) * MIB)  # a later reserve (samplers attached) replaces it
        elif m := _RE_OUTPUT.search(line):
            add(output, m[1], m[2])
        elif m := _RE_KV_KIND.search(line):
            swa = m[1] == "SWA"
        elif m := _RE_FA.search(line):
            fa = {"enabled": True, "disabled": False}.get(m[1])
        elif m := _RE_CTX.search(line):
            ctx[m[1]] = int(m[2])
    return LlamaBuffers(model, kv, compute, output, tuple(caches), fa, ctx.get("n_ctx"), ctx.get("n_ctx_seq"), dry_run)


_ABANDONED: list[LlamaLog] = []


class LlamaLog:
    """Capture llama.cpp's log while open; restore the previous callback on close.

    ``echo`` forwards each line to the ``edgekv.llama`` logger (shown with -vv); ``on_line(level,
    line)`` sees each line as it completes (ggml's level: 2 INFO, 3 WARN, 4 ERROR; it runs inside
    llama.cpp's callback, so it must not raise). ``keep_debug``: whether DEBUG lines are kept (a
    runner stops keeping them once its context is made: on a CUDA build every decode step logs one,
    "CUDA Graph id N reused", which would grow the list by a line a step for the runner's life; the
    lines edgekv parses are INFO).
    """

    def __init__(self, *, echo: bool = False, on_line: Callable[[int, str], None] | None = None) -> None:
        self.echo = echo
        self.on_line = on_line
        self.lines: list[tuple[int, str]] = []
        self._partial = ""
        self._level = 2
        self._callback: Any = None
        self._previous: tuple[Any, Any] | None = None
        self.keep_debug = True

    @native_callback  # llama.cpp calls it: a Ctrl-C inside is raised once it returns (edgekv.interrupt)
    def _on_log(self, level: int, text: bytes | None, _user_data: Any) -> None:
        if level != _LEVEL_CONT:
            if self._partial:
                self._emit(self._partial)
                self._partial = ""
            self._level = level
        if self._level == _LEVEL_DEBUG and not (self.keep_debug or self.echo):
            return
        chunk = self._partial + (text or b"").decode("utf-8", "replace")
        *complete, self._partial = chunk.split("\n")
        for line in complete:
            self._emit(line)

    def _emit(self, line: str) -> None:
        if self in _ABANDONED:
            return
        self.lines.append((self._level, line))
        if self.echo:
            llama_log.log(_GGML_LEVELS.get(self._level, logging.DEBUG), "%s", line)
        if self.on_line is not None:
            self.on_line(self._level, line)

    def abandon(self) -> None:
        """Leave llama.cpp logging into nothing, for good: a thread this process gave up on (a
        quantize after Ctrl-C) may still log, and must neither print nor call a freed callback."""
        _ABANDONED.append(self)  # its callback stays alive as long as the process
        self.on_line, self.echo, self.keep_debug, self._previous = None, False, False, None
        self.lines = []

    def __enter__(self) -> LlamaLog:
        llama_cpp = _llama_cpp()
        prev_cb = llama_cpp.llama_log_callback()
        prev_ud = ctypes.c_void_p()
        llama_cpp.llama_log_get(ctypes.byref(prev_cb), ctypes.byref(prev_ud))
        self._previous = (prev_cb, prev_ud)
        self._callback = llama_cpp.llama_log_callback(self._on_log)  # kept alive by self
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        return self

    def close(self) -> None:
        if self._previous is None:
            return
        if self._partial:
            self._emit(self._partial)
            self._partial = ""
        prev_cb, prev_ud = self._previous
        self._previous = None
        _llama_cpp().llama_log_set(prev_cb if prev_cb else None, prev_ud)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> list[str]:
        return [line for _, line in self.lines]

    def last_problem(self) -> str | None:
        """The last error line, else the last warning line, stripped."""
        for wanted in (_LEVEL_ERROR, _LEVEL_WARN):
            for level, line in reversed(self.lines):
                if level == wanted and line.strip():
                    return line.strip()
        return None

    def buffers(self, *, dry_run: bool = False) -> LlamaBuffers:
        return parse_buffers(self.text(), dry_run=dry_run)
