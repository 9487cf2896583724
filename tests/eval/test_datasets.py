"""edgekv.eval.datasets: local files, the synth generator, and hub datasets served by the fake hub
(tests/fakes/hub.py; real HTTP, real huggingface_hub)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekv.errors import DatasetError, HubError, SpecError
from edgekv.eval.answers import Kind
from edgekv.eval.datasets import HUB_DATASETS, Problem, gsm8k_gold, load_problems, shuffle_choices
from edgekv.eval.synth import generate
from tests.fakes.hub import FakeHub, dead_endpoint

# --- local files -----------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_local_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"q": "1+1?", "a": 2, "n": "x1"}, {"q": "2+2?", "a": "4", "n": "x2"}])
    problems = load_problems(path, question_field="q", answer_field="a", id_field="n")
    assert problems == (Problem("x1", "1+1?", "2"), Problem("x2", "2+2?", "4"))
    assert load_problems(path, question_field="q", answer_field="a", limit=1) == (Problem("p-1", "1+1?", "2"),)


def test_local_csv_and_choice_kind(tmp_path: Path) -> None:
    path = tmp_path / "mc.csv"
    path.write_text('question,answer\n"Pick one, please",B\nAnother,C\n', encoding="utf-8")
    problems = load_problems(path, kind="choice")
    assert [(p.question, p.answer, p.kind) for p in problems] == [
        ("Pick one, please", "B", Kind.CHOICE), ("Another", "C", Kind.CHOICE),
    ]  # fmt: skip


def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"question": "q", "answer": 1.0}]), encoding="utf-8")
    assert load_problems(path)[0].answer == "1"


def test_missing_field_names_file_line_field_and_flag(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "a", "answer": 1}, {"question": "b", "solution": 2}])
    with pytest.raises(DatasetError, match=r"p\.jsonl:2: no field 'answer' \(fields: question, solution\)") as e:
        load_problems(path)
    assert str(e.value).endswith("Name the right one with --answer-field")
    with pytest.raises(DatasetError, match=r"p\.jsonl:1: no field 'key'") as e:
        load_problems(path, id_field="key")
    assert str(e.value).endswith("Name the right one with --id-field")


def test_ids_come_from_the_files_id_field_when_rows_have_one(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"id": 7, "question": "a", "answer": 1}, {"id": "x", "question": "b", "answer": 2}]
    assert [p.id for p in load_problems(write_jsonl(tmp_path / "p.jsonl", rows))] == ["7", "x"]
    assert [p.id for p in load_problems(write_jsonl(tmp_path / "p.jsonl", rows[::-1]))] == ["x", "7"]
    plain = write_jsonl(tmp_path / "q.jsonl", [{"question": "a", "answer": 1}, {"question": "b", "answer": 2}])
    assert [p.id for p in load_problems(plain)] == ["q-1", "q-2"]  # no ids of its own: row numbers
    assert [p.id for p in load_problems(plain, id_field="question")] == ["a", "b"]


def test_a_repeated_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"id": 1, "question": "a", "answer": 1}, {"id": 1, "question": "b", "answer": 2}]
    )
    with pytest.raises(DatasetError, match=r"p\.jsonl:2: id '1' is also the id of line 1") as e:
        load_problems(path)
    assert "--id-field" in str(e.value)


def test_field_names_are_for_local_files() -> None:
    with pytest.raises(SpecError, match="synth has its own fields: --question-field, --answer-field and --id-field"):
        load_problems("synth", question_field="prompt")


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "a", "answer": 1}\n\n{"question": "b", answer: 2}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"p\.jsonl:3: bad JSON") as e:
        load_problems(path)
    assert e.value.line == 3 and "\n" not in str(e.value)


def test_bad_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("question,answer\na,1\nb,2,extra\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"p\.csv:3: more values"):
        load_problems(path)


def test_empty_field_and_unknown_things(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "  ", "answer": 1}])
    with pytest.raises(DatasetError, match="field 'question' is empty"):
        load_problems(path)
    with pytest.raises(DatasetError, match="no such file and not a known dataset"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(DatasetError, match="unknown file type"):
        load_problems(tmp_path / "p.txt")
    with pytest.raises(SpecError):
        load_problems("synth", limit=0)


# --- synth -----------------------------------------------------------------------------------------


def recompute(template: str, v: dict[str, int]) -> int:
    if template == "shopping":
        return v["bill"] - (v["a"] * v["p"] + v["b"] * v["q"])
    if template == "rates":
        return v["r"] * (v["h1"] + v["h2"]) - v["d"]
    if template == "sharing":
        total = v["a"] + v["b"] * v["c"]
        assert total % v["k"] == 0
        return total // v["k"]
    assert template == "ages"
    return (v["x"] + v["y"]) + (v["m"] * v["x"] + v["y"])


def test_synth_is_seeded_and_exact() -> None:
    assert load_problems("synth", limit=50, seed=7) == load_problems("synth", limit=50, seed=7)
    assert load_problems("synth", limit=50, seed=7) != load_problems("synth", limit=50, seed=8)
    items = generate(200, seed=7)
    assert {i.template for i in items} == {"shopping", "rates", "sharing", "ages"}
    for item in items:
        values = dict(item.values)
        assert item.answer == recompute(item.template, values) and item.answer > 0
        assert all(isinstance(x, int) and x > 0 for x in values.values())
        assert all(str(x) in item.question for x in values.values())
    problems = load_problems("synth", limit=200, seed=7)
    assert [p.answer for p in problems] == [str(i.answer) for i in items]
    assert len({p.question for p in problems}) > 190


# --- hub datasets ----------------------------------------------------------------------------------


def jsonl_bytes(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_aime25_and_math500(hub: FakeHub) -> None:
    hub.add_dataset("math-ai/aime25", {"test.jsonl": jsonl_bytes([{"id": 0, "problem": "P0", "answer": "70"}])})
    rows = [{"problem": "What is 1/2?", "answer": r"\frac{1}{2}", "unique_id": "test/a/1.json", "level": 2}]
    hub.add_dataset("HuggingFaceH4/MATH-500", {"test.jsonl": jsonl_bytes(rows)})
    assert load_problems("aime25", endpoint=hub.url) == (Problem("0", "P0", "70"),)
    assert load_problems("math500", endpoint=hub.url) == (Problem("test/a/1.json", "What is 1/2?", r"\frac{1}{2}"),)
    assert hub.requests_for("/datasets/math-ai/aime25/resolve/main/test.jsonl")


def test_offline_reuse_of_the_cache(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_dataset("math-ai/aime25", {"test.jsonl": jsonl_bytes([{"id": 1, "problem": "P1", "answer": "5"}])})
    online = load_problems("aime25", endpoint=hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset()
    assert load_problems("aime25", endpoint=dead_endpoint()) == online
    assert hub.requests == []


def test_offline_without_cache_is_a_hub_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 is set"):
        load_problems("math500", endpoint=dead_endpoint())


def test_unreachable_hub_is_a_hub_error() -> None:
    with pytest.raises(HubError, match="cannot reach the hub at .* and dataset math-ai/aime25/test.jsonl is not in"):
        load_problems("aime25", endpoint=dead_endpoint())  # huggingface_hub retries for ~20 s first


def gpqa_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    fields = ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
              "Incorrect Answer 3", "Subdomain"]  # fmt: skip
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


GPQA_ROWS = [
    {"Record ID": f"rec{i}", "Question": f"Q{i}?", "Correct Answer": f"right{i}", "Incorrect Answer 1": f"w{i}a",
     "Incorrect Answer 2": f"w{i}b", "Incorrect Answer 3": f"w{i}c", "Subdomain": "x"}
    for i in range(6)
]  # fmt: skip


def test_gpqa_is_gated(hub: FakeHub) -> None:
    hub.add_dataset("Idavidrein/gpqa", {"gpqa_diamond.csv": gpqa_csv(GPQA_ROWS)}, gated=True)
    with pytest.raises(HubError, match="dataset Idavidrein/gpqa is gated") as e:
        load_problems("gpqa", endpoint=hub.url)
    assert f"Accept it at {hub.url}/datasets/Idavidrein/gpqa, then set HF_TOKEN" in str(e.value)
    assert [r.authorization for r in hub.requests] == [None] * len(hub.requests)


def test_gpqa_with_token_shuffles_choices_with_a_fixed_seed(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_dataset("Idavidrein/gpqa", {"gpqa_diamond.csv": gpqa_csv(GPQA_ROWS)}, gated=True)
    hub.tokens.add("hf_secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    problems = load_problems("gpqa", endpoint=hub.url)
    assert len(problems) == 6 and all(p.kind is Kind.CHOICE for p in problems)
    for i, p in enumerate(problems):
        assert p.id == f"rec{i}" and sorted(p.choices) == sorted([f"right{i}", f"w{i}a", f"w{i}b", f"w{i}c"])
        assert p.choices["ABCD".index(p.answer)] == f"right{i}"
    assert len({p.answer for p in problems}) > 1  # not always the same position
    assert load_problems("gpqa", endpoint=hub.url) == problems
    once = shuffle_choices("r", ("a", "b", "c"), key="k", seed=0)
    assert once == shuffle_choices("r", ("a", "b", "c"), key="k", seed=0)


def test_gpqa_logs_no_problem_text(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hub.add_dataset("Idavidrein/gpqa", {"gpqa_diamond.csv": gpqa_csv(GPQA_ROWS)}, gated=True)
    hub.tokens.add("hf_secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with caplog.at_level("DEBUG"):
        load_problems("gpqa", endpoint=hub.url)
    assert "loaded 6 problems" in caplog.text
    assert not any(f"Q{i}?" in caplog.text or f"right{i}" in caplog.text for i in range(6))


def test_missing_repo_and_file_are_hub_errors(hub: FakeHub) -> None:
    with pytest.raises(HubError, match="dataset HuggingFaceH4/MATH-500 not found"):
        load_problems("math500", endpoint=hub.url)  # no such repo on the fake
    hub.add_dataset("HuggingFaceH4/MATH-500", {"train.jsonl": b"{}\n"})
    with pytest.raises(HubError, match="test.jsonl not found in dataset HuggingFaceH4/MATH-500 at revision main") as e:
        load_problems("math500", endpoint=hub.url)
    assert f"See the repo's files at {hub.url}/datasets/HuggingFaceH4/MATH-500" in str(e.value)


def test_gsm8k_gold() -> None:
    assert gsm8k_gold("She has 3+4=<<3+4=7>>7 apples.\n#### 1,007") == "1007"
    assert gsm8k_gold("no marker") is None


def parquet_bytes(rows: list[dict[str, object]]) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def test_parquet_datasets(hub: FakeHub) -> None:
    rows = [{"question": "Tom has 2 and gets 3. How many?", "answer": "2+3=<<2+3=5>>5\n#### 5"}]
    hub.add_dataset("openai/gsm8k", {HUB_DATASETS["gsm8k"].filename: parquet_bytes(rows)})
    aime = [{"ID": "2024-I-1", "Problem": "P", "Solution": "S", "Answer": 204}]
    hub.add_dataset("Maxwell-Jia/AIME_2024", {"aime_2024_problems.parquet": parquet_bytes(aime)})
    assert load_problems("gsm8k", endpoint=hub.url) == (Problem("gsm8k-1", rows[0]["question"], "5"),)
    assert load_problems("aime24", endpoint=hub.url) == (Problem("2024-I-1", "P", "204"),)


def test_parquet_without_pyarrow_names_the_install(tmp_path: Path) -> None:
    # a child interpreter where importing pyarrow fails, as on an install without it
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from edgekv.errors import RuntimeUnavailable\n"
        "from edgekv.eval.datasets import load_problems\n"
        "try:\n    load_problems(sys.argv[1])\n"
        "except RuntimeUnavailable as e:\n    print(e.hint)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.parquet")], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert out.stdout == "install it with: pip install pyarrow\n", out.stderr


def test_broken_parquet_is_a_dataset_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match=r"x\.parquet: bad parquet"):
        load_problems(tmp_path / "x.parquet")
