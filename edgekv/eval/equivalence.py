"""Is a predicted answer the reference answer? And which samples agree with each other (majority voting)?

``check_equivalence`` settles what it can without sympy: letters (case-insensitive) for choice
problems, equal strings after normalisation, and numbers (integers, decimals, ``a/b``, ``\\frac{a}{b}``,
``1,000``) compared as exact fractions (a decimal literal against a non-decimal is ``isclose`` at
rel 1e-6, so ``0.333`` is not ``1/3``). The rest goes to math-verify (the checker lighteval and lm-eval's
minerva_math use).

math-verify's own timeout uses SIGALRM, which fails off the main thread (its issues #50, #55), so it
runs with ``parsing_timeout=None``/``timeout_seconds=None`` in one worker subprocess that this
module owns (started on first need; ``close_worker`` stops it). Each call waits at most
``timeout_s`` for the answer; a worker that overruns is killed (and started again on the next call)
and the verdict is ``Verdict.TIMEOUT``, which counts as not equivalent. Calls from several threads
are served one at a time. Qwen2.5-Math's grader likewise gives sympy 1 s in a separate process;
our default is math-verify's own 5 s.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from edgekv.errors import RuntimeUnavailable
from edgekv.eval.answers import Kind, parse_kind
from edgekv.logconfig import get_logger

logger = get_logger(__name__)

DEFAULT_TIMEOUT_S = 5.0  # math-verify's own default per verify() call
STARTUP_TIMEOUT_S = 120.0  # starting the worker and importing sympy/antlr4; not part of timeout_s


class Verdict(enum.Enum):
    """The outcome of one comparison; only EQUIVALENT counts as correct."""

    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    TIMEOUT = "timeout"  # no verdict within timeout_s (or the worker died)


# --- fast paths --------------------------------------------------------------------------------

_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\s+")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$")
_FRAC_SHORT = re.compile(r"^(-?)\\frac(\d)(\d)$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)$")
_RATIO = re.compile(r"^([-+]?\d+)/([-+]?\d+)$")


def normalize(answer: str) -> str:
    """A comparison key: no spaces or TeX spacing, ``\\dfrac``/``\\tfrac`` as ``\\frac``, no trailing dot."""
    s = _SPACING.sub("", answer.strip())
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    s = s.rstrip(".")
    if s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1]
    return s


def as_number(answer: str) -> tuple[Fraction, bool] | None:
    """``(value, came from a decimal literal)`` for a plain number, ``a/b`` or ``\\frac{a}{b}``; else None."""
    s = normalize(answer)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    try:
        if _DECIMAL.match(s):
            return Fraction(s), "." in s
        if m := _RATIO.match(s):
            return Fraction(int(m.group(1)), int(m.group(2))), False
        if m := (_FRAC.match(s) or _FRAC_SHORT.match(s)):
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return (-value if m.group(1) else value), False
    except ZeroDivisionError:
        return None
    return None


def _fast_verdict(pred: str, gold: str) -> Verdict | None:
    if normalize(pred) == normalize(gold):
        return Verdict.EQUIVALENT
    a, b = as_number(pred), as_number(gold)
    if a is None or b is None:
        return None
    if a[0] == b[0]:
        return Verdict.EQUIVALENT
    if a[1] != b[1] and math.isclose(float(a[0]), float(b[0]), rel_tol=1e-6):
        return Verdict.EQUIVALENT
    return Verdict.DIFFERENT


# --- the math-verify worker --------------------------------------------------------------------


def _math_verify_equal(pred: str, gold: str) -> bool:  # runs in the worker process
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config: list[Any] = [LatexExtractionConfig(), ExprExtractionConfig()]

    def parsed(s: str) -> list[Any]:
        text = s if "$" in s or "\\boxed" in s else f"${s}$"
        return list(parse(text, extraction_config=config, parsing_timeout=None))

    gold_parsed, pred_parsed = parsed(gold), parsed(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def serve_stdio() -> None:
    """The worker's loop (run as ``python -c``): JSON ``[pred, gold]`` lines in, ``[status, value]`` out.

    stdout is kept for the protocol only: anything else printed goes to stderr, which the parent
    discards. Statuses: ``ready``/``error`` once at start, then ``ok`` (value: bool) or ``failed``."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(status: str, value: object) -> None:
        channel.write(json.dumps([status, value]) + "\n")
        channel.flush()

    try:
        import math_verify  # noqa: F401
    except ImportError as e:
        send("error", str(e))
        return
    # it warns once that its own timeout is off; we enforce ours, and parse failures are verdicts
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    send("ready", None)
    for line in sys.stdin:
        pred, gold = json.loads(line)
        try:
            send("ok", _math_verify_equal(pred, gold))
        except Exception as e:  # sympy/antlr raise anything on odd input: no verdict, not equal
            send("failed", f"{type(e).__name__}: {e}")


def _pump(stream: IO[str], replies: queue.Queue[str | None]) -> None:
    """Move the worker's reply lines into a queue (so the caller can wait with a deadline)."""
    try:
        with stream:
            for line in stream:
                replies.put(line)
    except (OSError, ValueError):  # the pipe broke under a kill
        pass
    replies.put(None)  # EOF: the worker is gone


class _Worker:
    """One ``serve_stdio`` subprocess; killed on a timeout and started again when next needed.

    A plain subprocess rather than multiprocessing: spawn would re-run the caller's ``__main__``
    (a script without a main guard would run twice), and fork is unsafe in a threaded process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the edgekv package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from edgekv.eval.equivalence import serve_stdio; serve_stdio()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            encoding="utf-8", env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        self._proc, self._replies = proc, queue.Queue()
        pump = threading.Thread(target=_pump, args=(proc.stdout, self._replies), name="edgekv-math-verify", daemon=True)
        pump.start()
        reply = self._reply(STARTUP_TIMEOUT_S)
        if reply is None or reply[0] != "ready":
            self._kill()
            detail = reply[1] if reply else f"no answer within {STARTUP_TIMEOUT_S:.0f} s"
            hint = "install it with: pip install 'math-verify[antlr4_13_2]'"
            raise RuntimeUnavailable(f"math-verify is not usable: {detail}", hint=hint)
        return proc

    def _reply(self, timeout_s: float) -> tuple[str, Any] | None:
        try:
            line = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if line is None:
            return None
        status, value = json.loads(line)
        return str(status), value

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            if self._proc.stdin is not None:  # stdout is closed by its pump thread at EOF
                try:
                    self._proc.stdin.close()
                except OSError:  # unflushed bytes to a dead process
                    pass
        self._proc = None

    def check(self, pred: str, gold: str, *, timeout_s: float) -> Verdict:
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps([pred, gold]) + "\n")
                proc.stdin.flush()
                reply = self._reply(timeout_s)
            except OSError:  # the worker died under us
                reply = None
            if reply is None:
                logger.warning("math-verify gave no verdict within %.3g s; counted as not equivalent", timeout_s)
                self._kill()
                return Verdict.TIMEOUT
        status, value = reply
        if status != "ok":
            logger.debug("math-verify failed on a comparison: %s", value)
            return Verdict.DIFFERENT
        return Verdict.EQUIVALENT if value else Verdict.DIFFERENT

    def close(self) -> None:
        with self._lock:
            self._kill()


_WORKER = _Worker()


def close_worker() -> None:
    """Stop the math-verify worker process (a later comparison starts a new one)."""
    _WORKER.close()


# --- the public API ------------------------------------------------------------------------------


def check_equivalence(
    pred: str, gold: str, *, kind: Kind | str = Kind.MATH, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Verdict:
    """Compare a predicted answer with the reference (see the module docstring for the order of checks)."""
    if parse_kind(kind) is Kind.CHOICE:
        same = pred.strip().strip("()").upper() == gold.strip().strip("()").upper()
        return Verdict.EQUIVALENT if same else Verdict.DIFFERENT
    fast = _fast_verdict(pred, gold)
    if fast is not None:
        return fast
    return _WORKER.check(pred, gold, timeout_s=timeout_s)


def is_equivalent(pred: str, gold: str, *, kind: Kind | str = Kind.MATH, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """True if ``pred`` is the same answer as ``gold``; a timeout counts as False."""
    return check_equivalence(pred, gold, kind=kind, timeout_s=timeout_s) is Verdict.EQUIVALENT


@dataclass(frozen=True, slots=True)
class VoteGroup:
    """Samples whose answers are equivalent; ``answer`` is the earliest sample's (the representative)."""

    answer: str
    indices: tuple[int, ...]

    @property
    def first(self) -> int:
        return self.indices[0]


def group_votes(answers: Sequence[str | None], *, equivalent: Callable[[str, str], bool]) -> tuple[VoteGroup, ...]:
    """Group sample indices by equivalent answers, largest group first (the majority).

    Samples without an answer (``None``) cast no vote. Each answer is compared, in sample order, with
    each group's representative (its earliest member) and joins the first group it is equivalent to,
    like Qwen2.5-Math's ``rm_maj_eval``; so groups never depend on later samples, and the groups of a
    prefix of the samples are the groups of all samples cut to that prefix. Equal-sized groups are
    ordered by their earliest sample: a tie is won by the answer that appeared first.
    """
    reps: list[str] = []
    members: list[list[int]] = []
    memo: dict[tuple[str, str], bool] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for g, rep in enumerate(reps):
            key = (answer, rep)
            if key not in memo:
                memo[key] = answer == rep or equivalent(answer, rep)
            if memo[key]:
                members[g].append(i)
                break
        else:
            reps.append(answer)
            members.append([i])
    groups = [VoteGroup(rep, tuple(idx)) for rep, idx in zip(reps, members, strict=True)]
    return tuple(sorted(groups, key=lambda grp: (-len(grp.indices), grp.first)))


def majority(answers: Sequence[str | None], *, equivalent: Callable[[str, str], bool]) -> VoteGroup | None:
    """The majority group of ``group_votes`` (ties to the earliest sample), or None if no sample answered."""
    groups = group_votes(answers, equivalent=equivalent)
    return groups[0] if groups else None
