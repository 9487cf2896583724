"""Atomic output files: every file edgekv writes is written as ``NAME.incomplete`` and then renamed
(:func:`atomic_output`, :func:`write_atomic`: the one place that does it).

Also the two checks every writer and reader of user files shares: a full disk (ENOSPC, or EFBIG
past RLIMIT_FSIZE) becomes :class:`DiskFull` with the numbers, and an input path that is not a
regular file is named for what it is (a folder, a FIFO) instead of "no such file".
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekv.errors import DiskFull, ModelFileNotFound, SpecError

INCOMPLETE = ".incomplete"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)

BeforeRename = Callable[[Path], None]  # called with the finished NAME.incomplete, before it is renamed


def incomplete_path(path: Path) -> Path:
    """The temporary name ``path`` is written under; a leftover from an earlier run is removed."""
    tmp = path.with_name(path.name + INCOMPLETE)
    tmp.unlink(missing_ok=True)
    return tmp


def free_bytes(folder: Path) -> int:
    """Free bytes of the file system holding ``folder`` (0 where it cannot be read)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):.2f} MiB"  # not units.format_bytes: fsutil and units are independent layers


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS


def disk_full(out: Path, *, need_bytes: int | None, written_bytes: int | None, cause: str | None = None) -> DiskFull:
    """The DiskFull for a write of ``out`` that failed: what it needed, what it wrote, what is free."""
    free = free_bytes(out.parent)
    parts = []
    if need_bytes is not None:
        parts.append(f"it needs ~{_mib(need_bytes)} ({need_bytes} bytes)")
    if written_bytes is not None:
        parts.append(f"{written_bytes} bytes were written")
    parts.append(f"{out.parent} has {_mib(free)} ({free} bytes) free")
    why = f" ({cause})" if cause else ""
    return DiskFull(
        f"the disk filled while writing {out.name}{why}: " + "; ".join(parts),
        need_bytes=need_bytes,
        free_bytes=free,
        hint="free some space or write elsewhere; the partial file was removed",
    )


@contextmanager
def atomic_output(
    path: Path, *, before_rename: BeforeRename | None = None, need_bytes: int | None = None, private: bool = False
) -> Iterator[Path]:
    """Write ``path`` atomically: yields the temporary ``NAME.incomplete`` to write, and once the block
    ends, hands it to ``before_rename`` and renames it to ``path``. On any failure it is removed, and a
    full disk becomes :class:`DiskFull` with the numbers (``need_bytes``: the size expected, if known).

    ``private``: a temporary name of this writer's own (``NAME.<random>.incomplete``), for a file
    several processes may write at once; otherwise a leftover ``NAME.incomplete`` is replaced.
    """
    if private:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=INCOMPLETE, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = incomplete_path(path)
    try:
        yield tmp
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.is_file() else None
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full(path, need_bytes=need_bytes, written_bytes=written, cause=str(e)) from e
        raise


def write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`."""
    with atomic_output(path, need_bytes=len(text.encode()), private=private) as tmp:
        tmp.write_text(text, encoding="utf-8")


def not_a_regular_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a file ("is a directory", "is a FIFO", "does not exist"), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def input_file(path: str, *, what: str = "model file") -> str:
    """``path`` if it is a regular file; else ModelFileNotFound (missing) or SpecError naming what it is."""
    why = not_a_regular_file(path)
    if why == "does not exist":
        raise ModelFileNotFound(f"{path}: no such file", hint=f"check the path to the {what}")
    if why is not None:
        raise SpecError(f"{path} {why}", hint=f"pass the {what} itself")
    return path


def bounded_lines(path: Path, *, max_bytes: int, too_long: Callable[[int], Exception]) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes with their line ending) of each line of ``path``, read in binary so the
    caller can name a line that is not UTF-8; a line over ``max_bytes`` is refused after reading
    ``max_bytes + 1`` bytes of it, with ``too_long(line number)`` (the caller's error class)."""
    with path.open("rb") as f:
        for no in itertools.count(1):
            raw = f.readline(max_bytes + 1)
            if not raw:
                return
            if len(raw) > max_bytes:
                raise too_long(no)
            yield no, raw


def read_json_document(path: Path, *, what: str, error: Callable[[str], Exception], max_bytes: int) -> object:
    """The JSON value of a whole-file document (a plan, a profile, a sweep manifest, a JSON dataset),
    checked as GGUF headers are before anything is built from it: its size (stat, before reading),
    its encoding (the line and column of a byte that is not UTF-8), its JSON (the line and column of the
    fault; nesting deeper than Python's recursion limit is a fault, not a crash). ``error(text)`` makes
    the caller's error class; the text names ``path`` and what it is not."""
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path} is {size} bytes, more than the {max_bytes >> 20} MiB a {what} can be")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        byte = f"byte 0x{data[e.start]:02x} at column {col}"
        raise error(f"{path}:{line}: not UTF-8 text ({byte}): not a {what}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: bad JSON ({e.msg} at column {e.colno}): not a {what}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply: not a {what}") from None
