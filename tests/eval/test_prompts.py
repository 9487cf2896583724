"""edgekv.eval.run's pure parts: prompts, thinking detection, budget-forcing tokens, seeds, rows."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from edgekv.eval.answers import Kind
from edgekv.eval.datasets import Problem
from edgekv.eval.metrics import ProblemRecord
from edgekv.eval.run import (
    FINAL_ANSWER_CUE,
    MATH_INSTRUCTION,
    THINKING_CUE,
    WAIT,
    EvalConfig,
    forcing_for,
    is_thinking_model,
    majority_answer,
    problem_row,
    sample_seed,
    user_message,
)  # fmt: skip
from edgekv.llama.generation import Finished, Sample

SPECIAL = {"<think>": 900, "</think>": 901}


class FakeVocab:
    """Characters as tokens; <think>/</think> single tokens when ``thinking``."""

    def __init__(self, *, thinking: bool, template: str = "") -> None:
        self.thinking, self.template = thinking, template

    def token_id(self, text: str) -> int | None:
        return SPECIAL.get(text) if self.thinking else None

    def chat_template(self) -> str | None:
        return self.template

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for tag, tid in SPECIAL.items():
                if self.thinking and text.startswith(tag, i):
                    out.append(tid)
                    i += len(tag)
                    break
            else:
                out.append(ord(text[i]))
                i += 1
        return out


def test_math_and_choice_prompts() -> None:
    math = Problem("p1", "What is 2+2?", "4")
    assert user_message(math) == "What is 2+2?\n" + MATH_INSTRUCTION
    choice = Problem("p2", "Pick one.", "B", Kind.CHOICE, ("x", "y", "z", "w"))
    msg = user_message(choice)
    assert "A) x\nB) y\nC) z\nD) w" in msg and "letter" in msg and "\\boxed{}" in msg


def test_thinking_detection_needs_the_tokens_and_the_template() -> None:
    assert is_thinking_model(FakeVocab(thinking=True, template="...<think>\n..."))  # type: ignore[arg-type]
    assert not is_thinking_model(FakeVocab(thinking=True, template="chatml"))  # type: ignore[arg-type]
    assert not is_thinking_model(FakeVocab(thinking=False, template="<think>"))  # type: ignore[arg-type]


def test_forcing_tokens_for_thinking_and_plain_models() -> None:
    cfg = EvalConfig(model_path="m.gguf", budget_tokens=100, reserve_tokens=10, force_length=True)
    v = FakeVocab(thinking=True, template="<think>")
    f = forcing_for(v, cfg, thinking=True)  # type: ignore[arg-type]
    assert THINKING_CUE == "\n</think>\n\n**Final Answer**\n\\boxed{"
    assert f.cue_tokens == (10, 901, *map(ord, FINAL_ANSWER_CUE))
    assert f.answer_cue_tokens == tuple(map(ord, FINAL_ANSWER_CUE)) and f.end_think_token == 901
    assert f.wait_tokens == tuple(map(ord, WAIT)) and (f.budget_tokens, f.reserve_tokens) == (100, 10)
    plain = forcing_for(FakeVocab(thinking=False), EvalConfig(model_path="m.gguf"), thinking=False)  # type: ignore[arg-type]
    assert plain.cue_tokens == tuple(map(ord, FINAL_ANSWER_CUE)) and plain.end_think_token is None
    assert plain.wait_tokens == ()


def test_sample_seeds_are_distinct_and_stable() -> None:
    seeds = {sample_seed(0, str(i), s) for i in range(50) for s in range(8)}
    assert len(seeds) == 400 and sample_seed(3, "2", 1) == sample_seed(3, "2", 1) != sample_seed(4, "2", 1)


def test_sample_seeds_follow_the_problem_id_not_its_position() -> None:
    """The seed is sha256 of "seed:id:sample", its first 8 bytes modulo 2**32 - 1; the expected values
    come from `printf '0:q7:1' | sha256sum` and bc (fc8903e35526f1ef mod ffffffff), not from this code."""
    assert sample_seed(0, "q7", 1) == 1370486227
    assert sample_seed(3, "gsm8k/12", 0) == 1310285195
    # the same ids in another order (a reordered, filtered file) get the same seeds
    ids = ["q1", "q2", "q3", "q4"]
    by_id = {pid: [sample_seed(0, pid, s) for s in range(4)] for pid in ids}
    assert {pid: [sample_seed(0, pid, s) for s in range(4)] for pid in reversed(ids[1:])} == {
        pid: by_id[pid] for pid in ids[1:]
    }
    assert all(0 <= x < 0xFFFFFFFF for xs in by_id.values() for x in xs)  # never llama.cpp's "random seed"


def sample(text: str, *, cut: bool = False) -> Sample:
    return Sample((1,) * 5, text, 5, "boxed" if cut else "eog", cut, ())


@pytest.mark.parametrize(
    ("texts", "majority", "correct", "maj"),
    [
        (["\\boxed{\\frac{1}{2}}", "so \\boxed{0.5}", "\\boxed{3}"], "\\frac{1}{2}", [True, True, False],
         [True, True, True]),
        (["\\boxed{3}", "no answer", "\\boxed{0.5}", "\\boxed{1/2}"], "0.5", [False, False, True, True],
         [False, False, False, True]),
    ],
)  # fmt: skip
def test_problem_row_votes_by_equivalence(
    texts: list[str], majority: str, correct: list[bool], maj: list[bool]
) -> None:
    key: Hashable = "0"
    row, rec = problem_row(Problem("p", "q", "1/2"), Finished(key, tuple(sample(t) for t in texts), 1.5),
                           config_id="abc", config={"x": 1})  # fmt: skip
    assert row["majority"] == majority and row["correct"] == correct and row["maj_correct"] == maj
    assert isinstance(rec, ProblemRecord) and majority_answer(rec) == majority
    assert row["n_tokens"] == [5] * len(texts) and row["seconds"] == 1.5 and row["config_id"] == "abc"
