"""``edgekv serve`` on a real model (Qwen2.5-Coder-0.5B-Instruct, CPU) through the official ``openai``
client: an answer, a stream, n samples with their majority vote, and a thinking budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.serve.server import Server, start

QUESTION = "What is 17 + 25? Put the final answer within \\boxed{}."


@pytest.fixture(scope="module")
def server(qwen_coder_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    s = start(qwen_coder_gguf, "--ctx", "3072", "--parallel", "3", "--threads", "2", log=log)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_a_chat_answer_and_its_stream(client: openai.OpenAI) -> None:
    args = {"model": "qwen", "messages": [{"role": "user", "content": "Say hello in French, one word."}],
            "max_tokens": 8, "temperature": 0}  # fmt: skip
    r = client.chat.completions.create(**args)  # type: ignore[call-overload]
    assert "bonjour" in (r.choices[0].message.content or "").lower()
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**args, stream=True)
                       if c.choices)  # fmt: skip
    assert streamed == r.choices[0].message.content


def test_n_samples_and_their_majority_vote(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": QUESTION}], n=3,
                                       max_tokens=96, temperature=0.7, seed=1, extra_body={"vote": True})  # fmt: skip
    assert len(r.choices) == 3
    vote = r.model_extra["vote"]  # type: ignore[index]
    assert vote["answer"] == "42" and vote["votes"] >= 2 and vote["n"] == 3
    for i in vote["groups"][0]["indices"]:
        assert "\\boxed{42}" in (r.choices[i].message.content or "")


def test_a_thinking_budget_cuts_and_cues_the_answer(client: openai.OpenAI) -> None:
    """At 12 tokens the paper's cue is injected; the model then writes its answer in the box."""
    long = "What is 17 + 25? Please reason step by step, and put your final answer within \\boxed{}."
    extra = {"thinking_budget": 12, "vote": True}
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": long}], n=2,
                                       max_tokens=40, temperature=0, extra_body=extra)  # fmt: skip
    for c in r.choices:
        text = c.message.content or ""
        assert "\n\n**Final Answer**\n\\boxed{" in text
        assert c.finish_reason == "stop"  # the box closed
    assert r.model_extra["vote"]["votes"] == 2  # type: ignore[index]
