"""The results file of ``edgekv eval``: its format, its writer, its reader, and the torn-line rule.

JSONL, one line per problem, a summary line per finished run. Schema 1 (``eval``'s resume,
``sweep``, ``frontier`` and ``calibrate`` all read it here; keep the names)::

    {"schema": 1, "type": "problem", "config_id", "config", "problem_id", "gold", "answers", "correct",
     "majority", "maj_correct", "n_tokens", "cut", "seconds"}
    {"schema": 1, "type": "summary", "config_id", "config", "metrics", "measured_memory", "decode_tps", ...}

The torn-line rule: lines are appended one at a time, each ending in its newline, flushed and fsynced, so a
killed run leaves whole lines and at most one torn line: the last, without its newline. Readers
(:func:`read_lines`) drop that line (logged); :func:`open_for_append` cuts it off before appending,
so a resumed run writes that problem again. A whole line (one that ends in a newline) that is not
JSON (or not UTF-8), or a result line of another schema, is damage no kill makes: a ResultsFileError naming
the file and line.

A results file has one writer: :func:`writer_lock` holds an advisory lock (``fcntl.flock``) on it for a
whole run, and a second ``eval`` or ``sweep`` on the same file is refused while the first runs. Before
appending, the writer reads the whole file (:func:`read_results` with ``strict``): a line that is not an
eval result line (another format), or a torn last line that cannot be the start of one (a binary file), is
refused, so eval never appends to, or cuts, a file that is not its own.

``config_id`` is a stable hash of the config's settings (everything but the predicted ``memory``
and ``n_ctx``, which follow from them and the prompts, and ``model_path``: the file's name, quant
and bytes identify it wherever it lies), so a rerun with the same settings resumes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgekv.errors import ResultsFileError
from edgekv.fsutil import bounded_lines
from edgekv.logconfig import get_logger

SCHEMA = 1
MAX_LINE_BYTES = 64 << 20  # one problem's G samples: a few MiB at G = 256 x 16k tokens; read no more
RESULT_TYPES = ("problem", "summary")
# derived or local: a prediction, the context the prompts needed, where the file is on this machine
NOT_HASHED = ("memory", "n_ctx", "model_path")

log = get_logger(__name__)


def config_id(config: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the config's settings as sorted JSON."""
    settings = {k: v for k, v in config.items() if k not in NOT_HASHED}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of each whole line of ``path`` that holds a JSON object, by the torn-line
    rule (module docstring): a torn last line is dropped.

    Raises:
        ResultsFileError: a whole line that is not UTF-8 or not JSON, a problem or summary line of
            another schema, or a torn last line that no results writer began (not ``{`` and UTF-8 text).
    """

    def too_long(no: int) -> ResultsFileError:
        return ResultsFileError(
            f"{path}:{no} is longer than {MAX_LINE_BYTES >> 20} MiB: not an eval results file",
            hint="name a results file eval or sweep wrote (JSONL)",
        )

    for no, raw in bounded_lines(path, max_bytes=MAX_LINE_BYTES, too_long=too_long):
        if not raw.endswith(b"\n"):  # the last line, cut short or not a results file
            if not _could_be_torn(raw):
                raise ResultsFileError(
                    f"{path}:{no} is neither an eval result line nor one cut short: not an eval results file",
                    hint="name a results file eval or sweep wrote (JSONL)",
                )
            log.warning("%s: ignoring a torn last line (%d bytes) from an interrupted run", path, len(raw))
            return
        row = _row(path, no, raw[:-1])
        if row is not None:
            yield no, row


def _row(path: Path, no: int, raw: bytes) -> dict[str, Any] | None:
    """The JSON object of whole line ``no`` (None: blank, or JSON that is not an object)."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ResultsFileError(
            f"{path}:{no} is not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
            "not an eval results file",
            hint="name a results file eval or sweep wrote (JSONL), or a sweep's folder",
        ) from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsFileError(
            f"{path}:{no} is not JSON ({e.msg}), and not a torn last line from a killed run",
            hint="the file is damaged: remove that line",
        ) from e
    except RecursionError:
        raise ResultsFileError(f"{path}:{no} is JSON nested too deeply: not an eval results file") from None
    if not isinstance(row, dict):
        return None
    if row.get("type") in RESULT_TYPES:
        if row.get("schema") != SCHEMA:
            raise ResultsFileError(f"{path}:{no} has results schema {row.get('schema')!r}; edgekv reads {SCHEMA}")
        _check_result(path, no, row)
    return row


def _check_result(path: Path, no: int, row: dict[str, Any]) -> None:
    """A problem or summary line has the keys every reader uses, of their types (as GGUF headers are
    checked: the line and the key named, before anything is computed from it)."""

    def bad(key: str, want: str) -> ResultsFileError:
        value = repr(row[key])[:40] if key in row else "missing"
        return ResultsFileError(f"{path}:{no}: {key} = {value} is not {want}: not an eval result line",
                                hint="the file is damaged: remove that line")  # fmt: skip

    if not isinstance(row.get("config_id"), str) or not row["config_id"]:
        raise bad("config_id", "a text id")
    if not isinstance(row.get("config"), dict):
        raise bad("config", "an object")
    if row["type"] != "problem":
        return
    if not isinstance(row.get("problem_id"), (str, int)) or isinstance(row["problem_id"], bool):
        raise bad("problem_id", "a text id")
    for key in ("correct", "maj_correct"):
        value = row.get(key, [] if key == "maj_correct" else None)
        if not isinstance(value, list) or not all(isinstance(x, bool) for x in value):
            raise bad(key, "a list of true/false")
    if not row["correct"]:
        raise bad("correct", "a non-empty list of true/false")


def _could_be_torn(raw: bytes) -> bool:
    """Whether ``raw`` can be the start of a line append_line wrote: ``{`` and UTF-8 (a cut may split a
    character at the end)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 3:
            return False
    return raw.startswith(b"{")


@dataclass
class ResultsFile:
    """What a results file holds for one config: its problem lines (by id) and its summary lines."""

    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)


def read_results(path: Path, *, config_id: str | None = None, strict: bool = False) -> ResultsFile:
    """The problem and summary lines of ``path`` (of ``config_id`` only, if given); a missing file is empty.

    Raises:
        ResultsFileError: as read_lines; with ``strict`` (the writer's read), also a line that is not a
            problem or summary line: a file of another format, which eval must not append to.
    """
    out = ResultsFile()
    if not path.is_file():
        return out
    for no, row in read_lines(path):
        if strict and row.get("type") not in RESULT_TYPES:
            shown = ", ".join(list(row)[:5])
            raise ResultsFileError(
                f"{path}:{no} is not an eval result line (keys: {shown or 'none'}): a file of another format",
                hint="pass another --out file",
            )
        if config_id is not None and row.get("config_id") != config_id:
            continue
        if row.get("type") == "problem":
            out.problems[str(row["problem_id"])] = row
        elif row.get("type") == "summary":
            out.summaries.append(row)
    return out


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on the results file ``path`` while the block runs; a second
    writer is refused at once. A file created here and still empty at the end is removed again.

    Raises:
        ResultsFileError: another process holds the lock (an eval or sweep writing ``path`` now).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, created = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
        fd, created = os.open(path, os.O_WRONLY | os.O_APPEND), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsFileError(
                f"{path} is being written by another edgekv eval or sweep (it holds the file's lock)",
                hint="wait for that run to end, or pass another --out file",
            ) from None
        try:
            yield
        finally:
            if created and os.fstat(fd).st_size == 0:  # a run refused before its first line leaves no file
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def summary_written(path: Path) -> bool:
    """True when ``path`` (one configuration's results) ends its run with a summary line."""
    return path.is_file() and any(row.get("type") == "summary" for _, row in read_lines(path))


def open_for_append(path: Path) -> IO[str]:
    """Open ``path`` for appending, first cutting a torn last line off (whole lines stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with path.open("r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
    return path.open("a", encoding="utf-8")


def append_line(fh: IO[str], row: Mapping[str, Any]) -> None:
    """One JSON line, its newline last (a write cut short leaves a torn line), flushed and fsynced."""
    fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
