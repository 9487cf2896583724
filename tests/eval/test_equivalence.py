"""edgekv.eval.equivalence: fast paths, math-verify in its worker (also off the main thread), timeouts,
and vote grouping by equivalence."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edgekv.eval.equivalence import (
    Verdict,
    as_number,
    check_equivalence,
    group_votes,
    is_equivalent,
    majority,
    normalize,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        ("17", "17", True),
        ("017", "17", True),
        (r"\frac{1}{2}", "0.5", True),
        (r"\dfrac{1}{2}", r"\frac12", True),
        ("1/2", r"\frac{1}{2}", True),
        ("1,000", "1000", True),
        ("-3", r"-\frac{6}{2}", True),
        ("0.333", r"\frac{1}{3}", False),  # rounded decimals are not exact fractions
        ("18", "17", False),
        (r"x + 1", r"x+1", True),  # normalised strings
    ],
)
def test_fast_paths(pred: str, gold: str, same: bool) -> None:
    assert is_equivalent(pred, gold) is same


def test_as_number_and_normalize() -> None:
    assert as_number("2.50") is not None and as_number("2.50")[0] * 2 == 5  # type: ignore[index]
    assert as_number(r"\sqrt{2}") is None
    assert as_number("1/0") is None
    assert normalize(r"\left( 1 ,\, 2 \right).") == "(1,2)"


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        (r"2\pi", r"\pi \cdot 2", True),
        (r"x^2+2x+1", r"(x+1)^2", True),
        (r"\sqrt{3}", r"\sqrt{2}", False),
    ],
)
def test_math_verify(pred: str, gold: str, same: bool) -> None:
    assert check_equivalence(pred, gold, timeout_s=30) is (Verdict.EQUIVALENT if same else Verdict.DIFFERENT)


def test_math_verify_off_the_main_thread() -> None:
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(is_equivalent(r"\frac{\sqrt{8}}{2}", r"\sqrt{2}")))
    thread.start()
    thread.join(120)
    assert results == [True]


def test_a_tiny_timeout_triggers_and_the_worker_recovers() -> None:
    assert is_equivalent(r"\sqrt{4}", "2", timeout_s=30)  # the worker is up
    assert check_equivalence(r"\frac{\pi}{4}", r"\frac{2\pi}{8}", timeout_s=1e-6) is Verdict.TIMEOUT
    assert check_equivalence(r"\frac{\pi}{4}", r"\frac{2\pi}{8}", timeout_s=30) is Verdict.EQUIVALENT


def test_a_pathological_input_times_out() -> None:
    # sympy evaluates 9^(9^9), a number of ~370 million digits: far more than 2 s
    assert check_equivalence(r"9^{9^{9}}", "3", timeout_s=2) is Verdict.TIMEOUT
    assert is_equivalent(r"\sqrt{9}", "3", timeout_s=30)  # a fresh worker answers again


def test_math_verify_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(
        "from edgekv.eval.equivalence import is_equivalent\n"
        "print(is_equivalent(r'\\frac{\\sqrt{2}}{2}', r'\\frac{1}{\\sqrt{2}}', timeout_s=60))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert out.stdout == "True\n", out.stderr  # printed once: the worker does not re-run the script


def test_choice_letters_ignore_case() -> None:
    assert is_equivalent("c", "C", kind="choice")
    assert is_equivalent("(B)", "B", kind="choice")
    assert not is_equivalent("A", "B", kind="choice")


def _numeric(a: str, b: str) -> bool:
    return is_equivalent(a, b)


def test_group_votes_by_equivalence_not_string() -> None:
    answers = ["0.5", r"\frac{1}{2}", "3", None, "1/2", "3"]
    groups = group_votes(answers, equivalent=_numeric)
    assert [g.indices for g in groups] == [(0, 1, 4), (2, 5)]
    assert groups[0].answer == "0.5"  # the earliest sample represents its group


def test_ties_go_to_the_earliest_sample() -> None:
    groups = group_votes(["7", "9", "9", "7"], equivalent=_numeric)
    assert [g.answer for g in groups] == ["7", "9"]
    top = majority(["5", "6"], equivalent=_numeric)
    assert top is not None and top.answer == "5"


def test_no_answers_no_majority() -> None:
    assert majority([None, None], equivalent=_numeric) is None
    assert group_votes([], equivalent=_numeric) == ()
