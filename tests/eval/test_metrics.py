"""edgekv.eval.metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from edgekv.errors import SpecError
from edgekv.eval.metrics import (
    ProblemRecord,
    bootstrap_interval,
    pass_at_k,
    summarize,
    wilson_interval,
)


def same(a: str, b: str) -> bool:
    return a == b


def record(pid: str, answers: list[str | None], gold: str, *, tokens: list[int] | None = None,
           cut: list[bool] | None = None) -> ProblemRecord:  # fmt: skip
    n = len(answers)
    return ProblemRecord.from_samples(
        pid, answers=answers, correct=[a == gold for a in answers], n_tokens=tokens or [100] * n,
        cut=cut or [False] * n, equivalent=same,
    )  # fmt: skip


def test_pass_at_k_by_hand() -> None:
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3)/C(5,3)
    assert pass_at_k(4, 3, 2) == 1.0  # n - c < k
    assert pass_at_k(4, 0, 4) == 0.0
    with pytest.raises(SpecError):
        pass_at_k(4, 1, 5)


def test_majority_with_ties() -> None:
    r = record("p", ["1", "2", "2", "1", "1"], gold="1")
    assert r.majority_correct(1)  # "1"
    assert r.majority_correct(2)  # "1" vs "2" tie: the earlier "1" wins
    assert not r.majority_correct(3)  # "2" twice
    assert r.majority_correct(4)  # 2-2 tie, "1" came first
    assert r.majority_correct(5)


def test_tie_goes_to_the_earlier_answer() -> None:
    r = record("p", ["2", "1"], gold="1")
    assert not r.majority_correct(2)  # 1-1 tie: "2" appeared first
    r = record("p", ["1", "2"], gold="1")
    assert r.majority_correct(2)


def test_no_answer_casts_no_vote() -> None:
    r = record("p", [None, "3", None], gold="3")
    assert not r.majority_correct(1)
    assert r.majority_correct(2) and r.majority_correct(3)


def test_summary_by_hand() -> None:
    records = [
        record("a", ["1", "1", "2", "1"], gold="1", tokens=[10, 20, 30, 40], cut=[False, False, True, False]),
        record("b", ["5", "6", "6", None], gold="5", tokens=[100, 100, 100, 100], cut=[True, True, False, False]),
    ]
    s = summarize(records, n_bootstrap=200, seed=1)
    assert (s.n_problems, s.n_samples) == (2, 4)
    assert s.pass_at_1.value == pytest.approx((3 / 4 + 1 / 4) / 2)
    # maj@k: a -> "1" always; b -> k=1 "5" ok, k=2 tie "5" first ok, k=3 "6" wins, k=4 "6"
    assert [e.value for e in s.maj_at_k] == [1.0, 1.0, 0.5, 0.5]
    expect_pass = [(pass_at_k(4, 3, k) + pass_at_k(4, 1, k)) / 2 for k in (1, 2, 3, 4)]
    assert [e.value for e in s.pass_at_k] == pytest.approx(expect_pass)
    assert s.pass_at_k[1].value == pytest.approx((1.0 + 0.5) / 2)
    assert s.mean_tokens == pytest.approx((100 + 400) / 8)
    assert s.cut_fraction == pytest.approx(3 / 8)
    for e in (s.pass_at_1, *s.maj_at_k, *s.pass_at_k):
        assert 0.0 <= e.low <= e.value <= e.high <= 1.0


def test_wilson_by_hand() -> None:
    lo, hi = wilson_interval(5, 10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_bootstrap_is_seeded() -> None:
    values = [0.0, 0.25, 0.5, 1.0, 1.0, 0.75]
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    lo, hi = bootstrap_interval(values, seed=3)
    assert lo < sum(values) / len(values) < hi
    assert bootstrap_interval([0.5] * 5) == (0.5, 0.5)


def test_bad_inputs() -> None:
    with pytest.raises(SpecError, match="same number of samples"):
        summarize([record("a", ["1"], "1"), record("b", ["1", "2"], "1")])
    with pytest.raises(SpecError, match="no problems"):
        summarize([])
    with pytest.raises(SpecError, match="differ in length"):
        ProblemRecord("x", ("1",), (True, False), (1,), (False,), (0,))


def test_maj_at_k_votes_by_equivalence() -> None:
    from edgekv.eval.equivalence import is_equivalent

    answers: list[str | None] = ["3", "0.5", r"\frac{1}{2}"]
    r = ProblemRecord.from_samples(
        "p", answers=answers, correct=[is_equivalent(a, "1/2") for a in answers if a is not None],
        n_tokens=[1, 1, 1], cut=[False, False, False], equivalent=is_equivalent,
    )  # fmt: skip
    assert r.vote_group == (0, 1, 1)
    assert not r.majority_correct(2)  # "3" vs "0.5": a tie, "3" came first
    assert r.majority_correct(3)  # by string it would still be a three-way tie won by "3"


# Wilson 95 % by hand (z = 1.959964, z^2 = 3.841459): 0/10 -> [0, z^2 / (10 + z^2)] = [0, 0.27753];
# 10/10 -> [10 / (10 + z^2), 1] = [0.72247, 1]; 3/10 -> center 0.35551 -+ 0.20985 = [0.10779, 0.60322].
WILSON_BY_HAND = {0: (0.0, 0.27753), 10: (0.72247, 1.0), 3: (0.10779, 0.60322)}


@pytest.mark.parametrize("right", [0, 10, 3])
def test_g1_pass1_pass_at_1_and_maj1_print_one_wilson_interval(right: int) -> None:
    """At G = 1 pass@1, pass@k (k = 1) and maj@1 are one figure: they had two intervals (bootstrap and
    Wilson), and a 0 % pass@1 had [0, 0]."""
    records = [record(str(i), ["1" if i < right else "2"], gold="1") for i in range(10)]
    s = summarize(records, n_bootstrap=200, seed=1)
    lo, hi = WILSON_BY_HAND[right]
    for e in (s.pass_at_1, s.pass_at_k[0], s.maj_at_k[0]):
        assert (e.value, e.low, e.high) == (right / 10, pytest.approx(lo, abs=1e-5), pytest.approx(hi, abs=1e-5))


@pytest.mark.parametrize(("answer", "right"), [("2", 0), ("1", 10)])
def test_0_and_100_percent_with_g4_get_a_real_interval(answer: str, right: int) -> None:
    """Every problem all wrong (or all right) over G = 4: the bootstrap of equal values was [0, 0]."""
    s = summarize([record(str(i), [answer] * 4, gold="1") for i in range(10)], n_bootstrap=200, seed=1)
    lo, hi = WILSON_BY_HAND[right]
    for e in (s.pass_at_1, *s.pass_at_k, *s.maj_at_k):
        assert (e.low, e.high) == (pytest.approx(lo, abs=1e-5), pytest.approx(hi, abs=1e-5))
