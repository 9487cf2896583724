"""The pure parts of edgekv serve: request checks and the reasoning/answer split."""

from __future__ import annotations

import pytest

from edgekv.errors import ApiRequestError
from edgekv.model.markers import ThinkMarkers
from edgekv.serve.protocol import Limits, ThinkSplitter, parse_call

TEXT = "<think>\nLet me add: 2 + 2 = 4.\n</think>\n\nThe answer is \\boxed{4}."


def split(text: str, *, opened: bool = False, size: int = 0, markers: ThinkMarkers | None = None) -> tuple[str, str]:
    sp = ThinkSplitter(opened=opened) if markers is None else ThinkSplitter(opened=opened, markers=markers)
    pieces = [text] if size == 0 else [text[i : i + size] for i in range(0, len(text), size)]
    parts = [sp.feed(p) for p in pieces] + [sp.flush()]
    return "".join(p[0] for p in parts), "".join(p[1] for p in parts)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7])
def test_reasoning_apart_from_the_answer_however_the_text_is_cut(size: int) -> None:
    assert split(TEXT, size=size) == ("Let me add: 2 + 2 = 4.\n", "The answer is \\boxed{4}.")


def test_a_prompt_that_opened_thinking_and_text_without_it() -> None:
    assert split("\nhmm, 4.</think>\n\n4", opened=True, size=2) == ("hmm, 4.", "4")
    assert split("Just 4.", size=1) == ("", "Just 4.")
    assert split("<think>\nstill thinking", size=3) == ("still thinking", "")  # cut before </think>


@pytest.mark.parametrize("size", [0, 1, 4])
def test_the_models_own_markers_split_the_reasoning(size: int) -> None:
    """Magistral's [THINK]...[/THINK] and EXAONE Deep's prefilled <thought> (only </thought> in the text);
    a </think> in their text is just text."""
    magistral = ThinkMarkers("[THINK]", "[/THINK]")
    text = "[THINK]\n7 + 8 = 15, not </think> 14.[/THINK]\n\nIt is 15."
    assert split(text, size=size, markers=magistral) == ("7 + 8 = 15, not </think> 14.", "It is 15.")
    exaone = ThinkMarkers("<thought>", "</thought>")
    assert split("2 + 2 = 4.\n</thought>\n\n4", opened=True, size=size, markers=exaone) == ("2 + 2 = 4.\n", "4")


def test_a_limit_is_named_in_the_refusal() -> None:
    with pytest.raises(ApiRequestError) as e:
        parse_call({"messages": [{"role": "user", "content": "x"}], "n": 9}, "chat", Limits(max_n=4))
    assert e.value.status == 400 and e.value.param == "n" and "limit is 4" in e.value.message
    with pytest.raises(ApiRequestError) as e:
        parse_call({"prompt": "x", "max_tokens": 10, "thinking_budget": 10}, "completion", Limits())
    assert e.value.param == "thinking_budget"
    with pytest.raises(ApiRequestError) as e:
        parse_call({"prompt": "x", "n": True}, "completion", Limits())
    assert "must be an integer" in e.value.message
