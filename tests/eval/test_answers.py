"""edgekv.eval.answers: the final answer out of a model's output, on hard strings."""

from __future__ import annotations

import pytest

from edgekv.errors import SpecError
from edgekv.eval.answers import boxed_contents, clean_math_answer, extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"$\boxed{17}$.", "17"),
        (r"first \boxed{3}, then on reflection \boxed{5}", "5"),  # the last box wins
        (r"\boxed{5\text{ cm}}", "5"),
        (r"\boxed{90^\circ}", "90"),
        (r"\boxed{\text{yes}}", "yes"),
        (r"\fbox{42}", "42"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"\boxed{{a}^{2}+\sqrt{\frac{1}{x}}}", r"{a}^{2}+\sqrt{\frac{1}{x}}"),
        (r"The answer is \boxed 7 indeed", "7"),
        ("Reasoning...\nAnswer: 42", "42"),
        ("answer:   $1,000$.", "1,000"),
        ("**Answer:** 12", "12"),
        ("Answer: 3\nwait, no.\nAnswer: 4", "4"),  # the last Answer line
        (r"\boxed{12} and later Answer: 13", "12"),  # a box beats an Answer line
        (r"Final answer \boxed{8} then the budget ran out \boxed{9", "8"),  # an unclosed box is no answer
        ("I could not solve it.", None),
        (r"\boxed{}", None),
        ("Answer:", None),
    ],
)
def test_extract_math(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="math") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"... so \boxed{C}", "C"),
        (r"\boxed{\text{(B)}}", "B"),
        (r"\boxed{d}", "D"),
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("**Answer:** (A)", "A"),
        ("Option (A) looks wrong, (D) fits.", "D"),
        ("A car moves... I pick B", "B"),
        ("A cat sat.", None),
        ("no letter here", None),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="choice") == expected


def test_boxed_contents_in_order() -> None:
    assert boxed_contents(r"\boxed{1} x \fbox{\{2\}} \boxed{a{b}c}") == ["1", r"\{2\}", "a{b}c"]


def test_clean_math_answer() -> None:
    assert clean_math_answer(r"  $\frac{3}{4}$. ") == r"\frac{3}{4}"
    assert clean_math_answer(r"\(x=2\)") == "x=2"
    assert clean_math_answer("  .  ") is None


def test_unknown_kind_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown answer kind"):
        extract_answer("42", kind="essay")
