"""Is a predicted answer the reference answer? And which samples agree with each other (majority voting)?

``check_equivalence`` settles what it can without sympy: letters (case-insensitive) for choice
problems, equal strings after normalisation, and numbers (integers, decimals, ``a/b``, ``\\frac{a}{b}``,
``1,000``) compared as exact fractions (a decimal literal against a non-decimal is ``isclose`` at
rel 1e-6, so ``0.333`` is not ``1/3``). The rest goes to math-verify (the checker lighteval and lm-eval's
minerva_math use).

math-verify's own timeout uses SIGALRM, which fails off the main thread (its issues #50, #55), so it
runs with ``parsing_timeout=None``/``timeout_seconds=None`` in one spawned worker process that this
module owns; each call waits at most ``timeout_s`` for the answer, and a worker that overruns is
killed (and respawned on the next call) and the verdict is ``Verdict.TIMEOUT``, which counts as not
equivalent. Calls from several threads are served one at a time. Like Qwen2.5-Math's grader, which
gives sympy 1 s in a separate process; our default is math-verify's own 5 s.
"""

from __future__ import annotations

import enum
import logging
import math
import multiprocessing
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

from edgekv.errors import RuntimeUnavailable
from edgekv.eval.answers import Kind, parse_kind

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0  # math-verify's own default per verify() call
STARTUP_TIMEOUT_S = 120.0  # spawning the worker and importing sympy/antlr4; not part of timeout_s


class Verdict(enum.Enum):
    """The outcome of one comparison; only EQUIVALENT counts as correct."""

    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    TIMEOUT = "timeout"


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


def _serve(conn: Connection) -> None:
    """The worker's loop: import math-verify once, then answer (pred, gold) -> bool until EOF."""
    try:
        import math_verify  # noqa: F401
    except ImportError as e:
        conn.send(("error", str(e)))
        return
    # it warns once that its own timeout is off; we enforce ours, and parse failures are verdicts
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    conn.send(("ready", None))
    while True:
        try:
            pred, gold = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", _math_verify_equal(pred, gold)))
        except Exception as e:  # sympy/antlr raise anything on odd input: not equal
            conn.send(("failed", f"{type(e).__name__}: {e}"))


class _Worker:
    """One spawned process running ``_serve``; killed on a timeout and respawned when next needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded process
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child,), name="edgekv-math-verify", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(STARTUP_TIMEOUT_S):
            self._kill()
            raise RuntimeUnavailable(f"the math-verify worker did not start within {STARTUP_TIMEOUT_S:.0f} s")
        try:
            status, detail = parent.recv()
        except EOFError:
            status, detail = "error", "the worker exited"
        if status != "ready":
            self._kill()
            raise RuntimeUnavailable(
                f"math-verify is not usable: {detail}", hint="pip install 'math-verify[antlr4_13_2]'"
            )
        return parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def check(self, pred: str, gold: str, *, timeout_s: float) -> Verdict:
        with self._lock:
            conn = self._conn if self._conn is not None else self._start()
            conn.send((pred, gold))
            try:
                ready = conn.poll(timeout_s)
                reply = conn.recv() if ready else None
            except (EOFError, OSError):
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
