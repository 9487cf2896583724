"""Quantize a GGUF with llama.cpp's llama_model_quantize: importance matrices, progress from its log.

The only place besides the runner that calls llama.cpp; ``edgekv.convert`` builds its ladder on it.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.errors import LlamaError, ModelFileNotFound, RuntimeUnavailable, SpecError
from edgekv.fsutil import BeforeRename, atomic_output, disk_full
from edgekv.llama.build import check_threads
from edgekv.llama.log import LlamaLog
from edgekv.logconfig import get_logger
from edgekv.model.quant import WeightQuant

if TYPE_CHECKING:
    from numpy.typing import NDArray

# llama_model_quantize writes its output through a std::ofstream with exceptions on; a write that
# fails (ENOSPC, EFBIG) surfaces only as this what() in its log ("basic_ios::clear: iostream error").
_WRITE_FAILED = "iostream error"

logger = get_logger("edgekv.convert.checkpoint")  # the logger name these messages have always carried


@dataclass(frozen=True, slots=True)
class Imatrix:
    """An importance matrix as llama.cpp's quantize tool hands it over: per-tensor mean squares."""

    path: Path
    entries: dict[str, NDArray[Any]]
    datasets: tuple[str, ...]
    chunk_count: int


def load_imatrix(path: str | os.PathLike[str]) -> Imatrix:
    """Read an importance matrix as llama.cpp's quantize tool does (common/imatrix-loader.cpp +
    tools/quantize load_imatrix): GGUF ``<tensor>.in_sum2``/``.counts`` pairs divided by the counts,
    or the legacy .dat format (sums divided by the call count).

    Raises:
        ModelFileNotFound: the file is missing.
        SpecError: the file is neither format, or lacks what llama.cpp requires.
    """
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ModelFileNotFound(f"{p}: no such imatrix file", hint="make one with llama-imatrix")
    with p.open("rb") as f:
        is_gguf = f.read(4) == b"GGUF"
    if not is_gguf:
        return _load_imatrix_legacy(p)
    import gguf

    r = gguf.GGUFReader(p)
    keys = ("imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size")
    if not all(k in r.fields for k in keys):
        raise SpecError(f"{p}: missing imatrix metadata ({', '.join(keys)})", hint="regenerate it with llama-imatrix")
    datasets = tuple(str(x) for x in r.fields["imatrix.datasets"].contents())
    chunk_count = int(r.fields["imatrix.chunk_count"].contents())
    sums: dict[str, NDArray[Any]] = {}
    counts: dict[str, NDArray[Any]] = {}
    for t in r.tensors:
        for suffix, into in ((".in_sum2", sums), (".counts", counts)):
            if t.name.endswith(suffix):
                if t.tensor_type != gguf.GGMLQuantizationType.F32:
                    raise SpecError(f"{p}: {t.name} must be F32")
                into[t.name[: -len(suffix)]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
    if not sums or set(sums) != set(counts):
        raise SpecError(f"{p}: mismatched or missing .in_sum2/.counts tensors")
    entries: dict[str, NDArray[Any]] = {}
    for name in sorted(sums):
        s, c = sums[name], np.floor(counts[name] + 0.5).astype(np.float32)  # std::lround
        per = s.reshape(len(c), -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(c[:, None] > 0, per / np.where(c > 0, c, 1)[:, None], np.float32(1.0))
        entries[name] = np.ascontiguousarray(e, dtype=np.float32).reshape(-1)
    return Imatrix(p, entries, datasets, chunk_count)


def _load_imatrix_legacy(p: Path) -> Imatrix:
    import numpy as np

    data = p.read_bytes()
    try:
        (n_entries,) = struct.unpack_from("<i", data, 0)
        pos, entries = 4, {}
        if n_entries < 1:
            raise ValueError
        for _ in range(n_entries):
            (n,) = struct.unpack_from("<i", data, pos)
            name = data[pos + 4 : pos + 4 + n].decode()
            ncall, nval = struct.unpack_from("<ii", data, pos + 4 + n)
            pos += 12 + n
            sums = np.frombuffer(data, dtype=np.float32, count=nval, offset=pos)
            pos += 4 * nval
            entries[name] = (sums / np.float32(ncall) if ncall > 0 else sums).astype(np.float32)
        chunks, datasets = 0, tuple[str, ...]()
        if pos + 4 <= len(data):
            (chunks,) = struct.unpack_from("<i", data, pos)
            if pos + 8 <= len(data):
                (n,) = struct.unpack_from("<i", data, pos + 4)
                datasets = (data[pos + 8 : pos + 8 + n].decode(errors="replace"),) if n > 0 else ()
    except (struct.error, ValueError, UnicodeDecodeError):
        raise SpecError(f"{p}: neither a GGUF nor a legacy imatrix file", hint="make one with llama-imatrix") from None
    return Imatrix(p, entries, datasets, chunks)


class _TensorProgress:
    """What quantizing reads of llama.cpp's log lines (captured by ``log.LlamaLog``): each goes to our
    logger (the library never prints) and a tensor's ``[ i/ n]`` line to ``on_tensor``."""

    def __init__(self, on_tensor: Callable[[int, int], None] | None) -> None:
        self.on_tensor = on_tensor
        self.error: BaseException | None = None

    def line(self, _level: int, text: str) -> None:
        logger.debug("llama.cpp: %s", text.rstrip())
        m = re.match(r"\[\s*(\d+)/\s*(\d+)\]", text)
        if m and self.on_tensor is not None and self.error is None:
            try:
                self.on_tensor(int(m.group(1)), int(m.group(2)))
            except BaseException as e:  # a callback cannot raise through C; re-raised afterwards
                self.error = e


def _in_worker(call: Callable[[], int], *, hold: object) -> int:
    """``call()`` in a daemon thread while this one waits, so a Ctrl-C ends the wait at once.

    llama_model_quantize has no way to stop it and runs for minutes on a large model; run here, a
    Ctrl-C would be noticed only when it returned. The KeyboardInterrupt leaves the thread running
    (its output is the ``.incomplete`` file, which ``atomic_output`` removes; the thread ends with the
    process; ``hold``, what the call reads, lives as long as the thread).
    """
    box: list[int | BaseException] = []

    def work() -> None:
        _ = hold  # the parameters and imatrix arrays llama.cpp reads, kept alive by the running thread
        try:
            box.append(call())
        except BaseException as e:  # handed to the waiting thread
            box.append(e)

    t = threading.Thread(target=work, name="llama_model_quantize", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.1)
    (result,) = box
    if isinstance(result, BaseException):
        raise result
    return result


def _failure_reason(lines: list[str]) -> str | None:
    """llama.cpp's reason for a failed quantize: its last line that says "error" or "failed"."""
    hits = [ln.strip() for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return hits[-1] if hits else None


def _imatrix_params(llama_cpp: Any, params: Any, im: Imatrix) -> list[Any]:
    """Fill params.imatrix / kv_overrides as tools/quantize does; returns what must stay alive."""
    n = len(im.entries)
    arr = (llama_cpp.llama_model_imatrix_data * (n + 1))()
    keep: list[Any] = [arr]
    for i, (name, values) in enumerate(im.entries.items()):
        name_b = ctypes.create_string_buffer(name.encode())
        keep += [name_b, values]
        arr[i].name = ctypes.cast(name_b, ctypes.c_char_p)
        arr[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        arr[i].size = values.size
    params.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    kv: list[tuple[str, int, Any]] = [("quantize.imatrix.file", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, str(im.path))]
    if im.datasets:
        kv.append(("quantize.imatrix.dataset", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR, im.datasets[0]))
    kv.append(("quantize.imatrix.entries_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, n))
    if im.chunk_count > 0:
        kv.append(("quantize.imatrix.chunks_count", llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, im.chunk_count))
    overrides = (llama_cpp.llama_model_kv_override * (len(kv) + 1))()
    for o, (key, tag, value) in zip(overrides, kv, strict=False):
        o.key, o.tag = key.encode(), tag
        if tag == llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR:
            o.value.val_str = value.encode()[:127]
        else:
            o.value.val_i64 = value
    params.kv_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    keep.append(overrides)
    return keep


def quantize_gguf(
    src: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    quant: WeightQuant | str,
    *,
    threads: int | None = None,
    imatrix: Imatrix | str | os.PathLike[str] | None = None,
    on_tensor: Callable[[int, int], None] | None = None,
    need_bytes: int | None = None,
    before_rename: BeforeRename | None = None,
    allow_requantize: bool = False,
) -> Path:
    """Quantize a GGUF with llama_model_quantize into ``out_path`` (via ``out_path.incomplete``).

    ``allow_requantize`` lets llama.cpp quantize tensors that are already quantized (lossy twice over:
    for measurements from a shipped quant when no f16 file is at hand).
    ``before_rename(tmp)`` sees the finished file before it takes its name; ``need_bytes`` (an
    estimate of the output) goes into the DiskFull message.

    Raises:
        RuntimeUnavailable: llama_cpp is not installed.
        DiskFull: the disk filled while llama.cpp wrote the output (the partial file is removed).
        LlamaError: llama.cpp refused; the message carries the log line that says why.
    """
    check_threads(threads)
    try:
        import llama_cpp
    except ImportError as e:
        raise RuntimeUnavailable("quantizing needs llama-cpp-python", hint="pip install llama-cpp-python") from e
    q = quant if isinstance(quant, WeightQuant) else WeightQuant.parse(quant)
    out = Path(out_path)
    im = imatrix if isinstance(imatrix, Imatrix) or imatrix is None else load_imatrix(imatrix)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = q.ftype
    params.nthread = threads or 0
    params.allow_requantize = allow_requantize
    keep = _imatrix_params(llama_cpp, params, im) if im is not None else []
    progress = _TensorProgress(on_tensor)
    llama_cpp.llama_backend_init()
    with atomic_output(out, before_rename=before_rename, need_bytes=need_bytes) as tmp:
        cap = LlamaLog(on_line=progress.line)
        with cap:
            try:
                rc = _in_worker(
                    lambda: int(
                        llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
                    ),
                    hold=(params, keep),
                )
            except KeyboardInterrupt:  # the worker goes on until the process ends: its log goes nowhere
                cap.abandon()
                raise
            del keep
        if progress.error is not None:
            raise progress.error
        if rc != 0 or not tmp.is_file():
            reason = _failure_reason(cap.text())
            if reason and _WRITE_FAILED in reason:  # its std::ofstream threw: the output could not be written
                written = tmp.stat().st_size if tmp.is_file() else None
                raise disk_full(out, need_bytes=need_bytes, written_bytes=written, cause=f"llama.cpp: {reason}")
            raise LlamaError(f"llama_model_quantize failed to make {q.value} from {src}", reason=reason)
    return out
