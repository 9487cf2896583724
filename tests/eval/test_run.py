"""edgekv.eval.run / results on real llama.cpp (CPU): the results file, resume, config ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekv.eval.datasets import load_problems, synth_problems
from edgekv.eval.results import config_id, read_results
from edgekv.eval.run import EvalConfig, evaluate
from edgekv.llama.runner import LoadedModel

PROBLEM_KEYS = {"schema", "type", "config_id", "config", "problem_id", "gold", "answers", "correct", "majority",
                "maj_correct", "n_tokens", "cut", "seconds"}  # fmt: skip
CONFIG_KEYS = {"model", "model_path", "quant", "effective_bytes", "n_params", "type_k", "type_v", "budget_tokens",
               "reserve_tokens", "samples", "temperature", "top_p", "top_k", "seed", "force_length", "thinking",
               "dataset", "n_ctx", "memory"}  # fmt: skip


def small(model: Path, **kw: object) -> EvalConfig:
    base: dict[str, object] = dict(budget_tokens=8, reserve_tokens=4, samples=2, n_threads=1, slots=4)
    base.update(kw)
    return EvalConfig(model_path=str(model), **base)  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_results_file_schema_and_resume_after_a_partial_line(gemma_gguf: Path, tmp_path: Path) -> None:
    problems = synth_problems(3)
    out = tmp_path / "r.jsonl"
    with LoadedModel(gemma_gguf) as model:
        first = evaluate(small(gemma_gguf), problems, out=out, model=model)
        rows = lines(out)
        assert [r["type"] for r in rows] == ["problem"] * 3 + ["summary"]
        assert PROBLEM_KEYS <= set(rows[0]) and CONFIG_KEYS <= set(rows[0]["config"])  # type: ignore[arg-type]
        assert set(rows[0]["config"]["memory"]) >= {"weights", "kv", "compute", "overhead", "total", "paper_total"}  # type: ignore[index]
        assert len(rows[0]["answers"]) == 2 and len(rows[0]["maj_correct"]) == 2  # type: ignore[arg-type]
        assert rows[3]["metrics"]["n_problems"] == 3 and rows[3]["measured_memory"]["kv"] > 0  # type: ignore[index]
        assert first.config_id == rows[0]["config_id"] == config_id(first.config)
        # a killed run: one whole problem line, then half of the next
        text = out.read_text().splitlines(keepends=True)
        out.write_text(text[0] + text[1][: len(text[1]) // 2])
        assert list(read_results(out, config_id=first.config_id).problems) == [rows[0]["problem_id"]]
        again = evaluate(small(gemma_gguf), problems, out=out, model=model)
    assert again.n_resumed == 1
    rows2 = lines(out)  # whole lines only: the partial one was cut off before appending
    assert [r["type"] for r in rows2] == ["problem"] * 3 + ["summary"]
    assert sorted(r["problem_id"] for r in rows2[:3]) == sorted(p.id for p in problems)  # type: ignore[type-var]
    assert again.metrics["n_problems"] == 3


def test_finished_config_is_skipped_and_another_config_is_not(gemma_gguf: Path, tmp_path: Path) -> None:
    problems = synth_problems(2)
    out = tmp_path / "r.jsonl"
    with LoadedModel(gemma_gguf) as model:
        evaluate(small(gemma_gguf), problems, out=out, model=model)
        n = len(lines(out))
        done = evaluate(small(gemma_gguf, slots=2), problems, out=out, model=model)  # slots do not change answers
        assert done.n_resumed == 2 and done.stats.n_steps == 0 and len(lines(out)) == n
        other = evaluate(small(gemma_gguf, budget_tokens=9), problems, out=out, model=model)
    assert other.n_resumed == 0 and other.config_id != done.config_id
    assert len(lines(out)) == n + 3


def test_a_reordered_file_resumes_by_its_own_ids(gemma_gguf: Path, tmp_path: Path) -> None:
    """A file with ids of its own: two problems run, the file is reordered, all run; the two done are
    skipped wherever they stand now, and only the third is evaluated (numbered problems would take
    the new first two for the old ones)."""
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in (1, 2, 3)]
    data, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = small(gemma_gguf, dataset=str(data))
    with LoadedModel(gemma_gguf) as model:
        evaluate(config, load_problems(data, limit=2), out=out, model=model)
        data.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
        again = evaluate(config, load_problems(data), out=out, model=model)
    assert again.n_resumed == 2 and [p["problem_id"] for p in again.problems] == ["q3", "q2", "q1"]
    problem_rows = [r for r in lines(out) if r["type"] == "problem"]
    assert [(r["problem_id"], r["gold"]) for r in problem_rows] == [("q1", "2"), ("q2", "4"), ("q3", "6")]


def test_config_id_ignores_memory_and_context() -> None:
    a = {"model": "m.gguf", "model_path": "/a/m.gguf", "budget_tokens": 8, "memory": {"kv": 1}, "n_ctx": 256}
    b = {"budget_tokens": 8, "model": "m.gguf", "model_path": "/b/m.gguf", "memory": {"kv": 2}, "n_ctx": 512}
    assert config_id(a) == config_id(b) != config_id({**a, "budget_tokens": 9})


@pytest.mark.slow
def test_qwen_coder_solves_synth_problems_with_boxed_answers(qwen_coder_gguf: Path, tmp_path: Path) -> None:
    cfg = EvalConfig(model_path=str(qwen_coder_gguf), budget_tokens=256, reserve_tokens=16, samples=2,
                     temperature=0.0, n_threads=1)  # fmt: skip
    problems = synth_problems(4)
    res = evaluate(cfg, problems, out=tmp_path / "q.jsonl")
    assert res.config["quant"] == "Q4_K_M" and res.config["thinking"] is False
    # what holds for any tokens: each answer is graded against the gold by an independent check
    gold = {q.id: q.answer for q in problems}
    for p in res.problems:
        for answer, correct in zip(p["answers"], p["correct"], strict=True):
            assert correct == (answer is not None and answer.strip() == str(gold[p["problem_id"]]))
    # the model's own quality (this real 0.5B model boxes its GSM8K-style answers): a smoke check,
    # slow-marked, that the whole path can score a right answer at all
    assert res.metrics["pass_at_1"]["value"] > 0


def test_preflight_refuses_before_loading_the_weights(gemma_gguf: Path, tmp_path: Path) -> None:
    from edgekv.errors import DoesNotFit

    out = tmp_path / "r.jsonl"
    with pytest.raises(DoesNotFit):
        evaluate(small(gemma_gguf, vram_bytes=64 << 20, slots=None), synth_problems(2), out=out)
    assert not out.exists() or out.read_text() == ""


def test_a_problem_gets_the_same_samples_wherever_it_stands(gemma_gguf: Path, tmp_path: Path) -> None:
    """Samples are seeded by the problem's id, not its position: q1, first of three in one file and
    second of two in another (reordered, q2 filtered out), gets the same answers, token counts and
    endings; so does q3. One sample at a time (slots 1): with more slots a problem's prompt decodes
    beside the samples of the one before it, and llama.cpp's CPU kernels round a batch of several
    tokens a little differently from one token, which can change a sampled token."""
    rows = {f"q{i}": {"id": f"q{i}", "question": f"Name a number bigger than {i}.", "answer": str(i + 1)}
            for i in (1, 2, 3)}  # fmt: skip
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(rows[k]) + "\n" for k in ("q1", "q2", "q3")))
    second.write_text("".join(json.dumps(rows[k]) + "\n" for k in ("q3", "q1")))
    keep = ("answers", "n_tokens", "finish", "cut")
    with LoadedModel(gemma_gguf) as model:
        got = {}
        for data in (first, second):
            config = small(gemma_gguf, dataset=str(data), samples=4, slots=1, temperature=1.0, reserve_tokens=6)
            res = evaluate(config, load_problems(data), out=None, model=model)
            got[data.name] = {p["problem_id"]: tuple(tuple(p[k]) for k in keep) for p in res.problems}
    assert list(got["b.jsonl"]) == ["q3", "q1"]
    assert got["a.jsonl"]["q1"] == got["b.jsonl"]["q1"] and got["a.jsonl"]["q3"] == got["b.jsonl"]["q3"]
