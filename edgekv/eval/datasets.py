"""Problem sets for ``edgekv eval``: local JSONL/JSON/CSV files, the built-in ``synth`` generator, and
named hub datasets.

Named datasets and the file each loader reads (checked against other harnesses' loaders, which
pin these files; the formats are the repos' own):

============  =========================  =====================================  ==========================
name          repo (dataset)             file                                   question / answer / id
============  =========================  =====================================  ==========================
aime25        math-ai/aime25             test.jsonl                             problem / answer / id
aime24        Maxwell-Jia/AIME_2024      aime_2024_problems.parquet             Problem / Answer / ID
math500       HuggingFaceH4/MATH-500     test.jsonl                             problem / answer / unique_id
gsm8k         openai/gsm8k               main/test-00000-of-00001.parquet       question / answer after ####
gpqa          Idavidrein/gpqa (gated)    gpqa_diamond.csv                       Question / Correct Answer,
                                                                                Incorrect Answer 1-3 / Record ID
============  =========================  =====================================  ==========================

Parquet needs pyarrow (imported only for those files). GPQA's four options are shuffled with a
fixed seed per problem (``random.Random(f"{seed}:{record id}")``) and the answer is the letter of
the correct one; its authors ask that examples not be revealed in plain text, so nothing here logs
a problem's text, only counts and ids. ``limit`` takes the first N problems in file order.

A local file names its fields with ``question_field``/``answer_field``/``id_field`` (``eval
--question-field`` ...). A problem's id is its ``id_field``, else the file's own ``id`` field where a
row has one, else ``<file stem>-<row number>``: with ids of its own a file can be reordered and still
resume (``eval --out``). Ids are unique within a file.

Local files are read as a hostile user may write them: a path that is a folder, a FIFO or a symlink loop is
named as such; JSONL and CSV are read line by line in binary, so a line that is not UTF-8 is a DatasetError
naming the file and line, and a line over ``MAX_LINE_BYTES`` (1 MiB) is refused without being read whole.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekv.errors import DatasetError, RuntimeUnavailable, SpecError
from edgekv.eval.answers import CHOICE_LETTERS, Kind, parse_kind
from edgekv.eval.synth import generate
from edgekv.fsutil import bounded_lines, not_a_regular_file, read_json_document
from edgekv.logconfig import get_logger

logger = get_logger(__name__)

DEFAULT_SYNTH_PROBLEMS = 100
DEFAULT_ID_FIELD = "id"  # a local file's ids, where its rows have them and no --id-field is given
FIELD_FLAGS = {"question_field": "--question-field", "answer_field": "--answer-field", "id_field": "--id-field"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: its question, reference answer (a letter for choice problems) and options."""

    id: str
    question: str
    answer: str
    kind: Kind = Kind.MATH
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HubSource:
    """Where a named dataset lives on the hub and which fields hold what."""

    repo_id: str
    filename: str
    question_field: str
    answer_field: str
    id_field: str | None
    kind: Kind = Kind.MATH
    gated: bool = False


HUB_DATASETS: dict[str, HubSource] = {
    "aime25": HubSource("math-ai/aime25", "test.jsonl", "problem", "answer", "id"),
    "aime24": HubSource("Maxwell-Jia/AIME_2024", "aime_2024_problems.parquet", "Problem", "Answer", "ID"),
    "math500": HubSource("HuggingFaceH4/MATH-500", "test.jsonl", "problem", "answer", "unique_id"),
    "gsm8k": HubSource("openai/gsm8k", "main/test-00000-of-00001.parquet", "question", "answer", None),
    "gpqa": HubSource("Idavidrein/gpqa", "gpqa_diamond.csv", "Question", "Correct Answer", "Record ID",
                      Kind.CHOICE, gated=True),
}  # fmt: skip
GPQA_WRONG_FIELDS = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


# --- reading rows --------------------------------------------------------------------------------

Row = dict[str, Any]


MAX_LINE_BYTES = 1 << 20  # one problem is a few KiB; a longer line is refused before it is read whole


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of each line of ``path``, read in binary so that a line
    that is not UTF-8 is named by its number, and a line over MAX_LINE_BYTES is refused after reading
    MAX_LINE_BYTES + 1 bytes of it.

    Raises:
        DatasetError: a line that is not UTF-8, or longer than MAX_LINE_BYTES.
    """

    def too_long(line_no: int) -> DatasetError:
        return DatasetError(
            f"line longer than {MAX_LINE_BYTES >> 20} MiB (a problem is a few KiB)", path=str(path),
            line=line_no, hint="split the file into one problem per line",
        )  # fmt: skip

    for line_no, raw in bounded_lines(path, max_bytes=MAX_LINE_BYTES, too_long=too_long):
        try:
            yield line_no, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DatasetError(
                f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                path=str(path),
                line=line_no,
                hint="save the file as UTF-8",
            ) from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"bad JSON ({e.msg} at column {e.colno})", path=str(path), line=line_no) from None
        except RecursionError:
            raise DatasetError("JSON nested too deeply", path=str(path), line=line_no) from None
        if not isinstance(row, dict):
            raise DatasetError(f"expected a JSON object, got {type(row).__name__}", path=str(path), line=line_no)
        yield line_no, row


MAX_JSON_BYTES = 256 << 20  # a JSON array is read whole: past this, write one problem per line (.jsonl)


def _read_json(path: Path) -> Iterator[tuple[int, Row]]:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):  # JSON Lines named .json
        yield from _read_jsonl(path)
        return
    rows = read_json_document(path, what="JSON dataset", error=_json_error, max_bytes=MAX_JSON_BYTES)
    assert isinstance(rows, list)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DatasetError(f"item {i} is a {type(row).__name__}, not an object", path=str(path))
        yield i, row


def _json_error(text: str) -> DatasetError:
    return DatasetError(text, hint="save it as UTF-8 JSON: a list of objects, or one object per line (.jsonl)")


def _read_csv(path: Path) -> Iterator[tuple[int, Row]]:
    reader = csv.DictReader(line for _, line in _lines(path))
    if not reader.fieldnames:
        raise DatasetError("empty CSV file (no header line)", path=str(path))
    try:
        for row in reader:
            if None in row:
                raise DatasetError(
                    f"more values than the {len(reader.fieldnames)} header fields", path=str(path),
                    line=reader.line_num,
                )  # fmt: skip
            yield reader.line_num, dict(row)
    except csv.Error as e:
        raise DatasetError(f"bad CSV: {e}", path=str(path), line=reader.line_num) from None


def _read_parquet(path: Path) -> Iterator[tuple[int, Row]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeUnavailable(
            f"{path.name} is a parquet file and reading it needs pyarrow", hint="install it with: pip install pyarrow"
        ) from None
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError: a broken file
        raise DatasetError(f"bad parquet file: {e}", path=str(path)) from None
    yield from enumerate(rows, 1)


def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Row]]:
    """``(line or row number, record)`` for each record of a .jsonl/.json/.csv/.parquet file."""
    p = Path(path)
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise DatasetError(f"unknown file type {p.suffix!r}", path=str(p), hint="use .jsonl, .json, .csv or .parquet")
    return reader(p)


# --- rows -> problems --------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, (list, dict, bool)) or (isinstance(value, float) and not math.isfinite(value)):
        raise TypeError(f"is a {type(value).__name__} ({value!r:.40}), not text or a number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _has(row: Row, name: str) -> bool:
    try:
        return row.get(name) is not None and bool(_text(row[name]))
    except TypeError:
        return True  # there, and wrong: _field names it


def _field(row: Row, name: str, *, path: Path, line: int, flag: str | None = None) -> str:
    """``row[name]`` as text; DatasetError when it is missing (naming ``flag``, the option that picks it) or empty."""
    if name not in row or row[name] is None:
        fields = ", ".join(sorted(map(str, row))) or "none"
        hint = f"name the right one with {flag}" if flag else None
        raise DatasetError(f"no field {name!r} (fields: {fields})", path=str(path), line=line, hint=hint)
    try:
        value = _text(row[name])
    except TypeError as e:
        raise DatasetError(f"field {name!r} {e}", path=str(path), line=line) from None
    if not value:
        raise DatasetError(f"field {name!r} is empty", path=str(path), line=line)
    return value


def gsm8k_gold(solution: str) -> str | None:
    """GSM8K's reference answer: the number after ``####``, without thousands separators."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "") or None


def shuffle_choices(correct: str, wrong: tuple[str, ...], *, key: str, seed: int) -> tuple[tuple[str, ...], str]:
    """The options in a fixed order per (seed, key), and the letter of the correct one."""
    options = [correct, *wrong]
    random.Random(f"{seed}:{key}").shuffle(options)
    return tuple(options), CHOICE_LETTERS[options.index(correct)]


def _problems_from_rows(
    path: Path, *, question_field: str, answer_field: str, id_field: str | None, kind: Kind, limit: int | None,
    name: str | None = None, seed: int = 0, field_flags: bool = True,
) -> tuple[Problem, ...]:  # fmt: skip
    """The problems of a named dataset's file (``name``) or of a local file (``name`` None: the fields
    are the user's, named by the eval flags in errors unless ``field_flags`` is False (sweep has none), and
    a row's own ``id`` is its id)."""
    out: list[Problem] = []
    flags: dict[str, str | None] = dict(FIELD_FLAGS) if name is None and field_flags else dict.fromkeys(FIELD_FLAGS)
    first_line: dict[str, int] = {}
    for index, (line, row) in enumerate(read_rows(path), 1):
        if limit is not None and len(out) >= limit:
            break
        question = _field(row, question_field, path=path, line=line, flag=flags["question_field"])
        answer = _field(row, answer_field, path=path, line=line, flag=flags["answer_field"])
        if id_field:
            pid = _field(row, id_field, path=path, line=line, flag=flags["id_field"])
        elif name is None and _has(row, DEFAULT_ID_FIELD):
            pid = _field(row, DEFAULT_ID_FIELD, path=path, line=line)
        else:
            pid = f"{name or path.stem}-{index}"
        if pid in first_line:
            raise DatasetError(
                f"id {pid!r} is also the id of line {first_line[pid]}", path=str(path), line=line,
                hint="ids must be unique" + (": name another field with --id-field" if flags["id_field"] else ""),
            )  # fmt: skip
        first_line[pid] = line
        choices: tuple[str, ...] = ()
        if name == "gsm8k":
            gold = gsm8k_gold(answer)
            if gold is None:
                raise DatasetError(f"field {answer_field!r} has no '#### answer'", path=str(path), line=line)
            answer = gold
        elif name == "gpqa":
            wrong = tuple(_field(row, f, path=path, line=line) for f in GPQA_WRONG_FIELDS)
            choices, answer = shuffle_choices(answer, wrong, key=pid, seed=seed)
        out.append(Problem(pid, question, answer, kind, choices))
    return tuple(out)


def synth_problems(n: int, *, seed: int = 0) -> tuple[Problem, ...]:
    """``n`` generated word problems (``edgekv.eval.synth``) as Problems with integer answers."""
    return tuple(
        Problem(f"synth-{seed}-{i}", item.question, str(item.answer)) for i, item in enumerate(generate(n, seed=seed))
    )


def load_problems(
    name_or_path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    id_field: str | None = None,
    kind: Kind | str = Kind.MATH,
    seed: int = 0,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    revision: str | None = None,
    field_flags: bool = True,
) -> tuple[Problem, ...]:
    """Problems from ``synth``, a named hub dataset (``HUB_DATASETS``) or a local file.

    Field names apply to local files (hub datasets have their own; the module docstring says which id
    a problem gets); ``seed`` picks synth's problems and GPQA's option order;
    ``endpoint``/``cache_dir``/``token``/``revision`` go to the hub download; ``field_flags``: errors
    name eval's --question-field/--answer-field/--id-field (sweep has none: False).
    """
    if limit is not None and limit < 1:
        raise SpecError(f"limit must be at least 1, got {limit}")
    name = str(name_or_path)
    named = name == "synth" or name in HUB_DATASETS
    if named and (question_field != "question" or answer_field != "answer" or id_field is not None):
        raise SpecError(
            f"{name} has its own fields: --question-field, --answer-field and --id-field are for local files"
        )
    if name == "synth":
        problems = synth_problems(limit or DEFAULT_SYNTH_PROBLEMS, seed=seed)
    elif name in HUB_DATASETS:
        src = HUB_DATASETS[name]
        from edgekv.hub.datasets import download_dataset_file

        path = download_dataset_file(
            src.repo_id, src.filename, endpoint=endpoint, cache_dir=cache_dir, token=token, revision=revision
        )
        problems = _problems_from_rows(
            path, question_field=src.question_field, answer_field=src.answer_field, id_field=src.id_field,
            kind=src.kind, limit=limit, name=name, seed=seed,
        )  # fmt: skip
    else:
        path = Path(name_or_path)
        why = not_a_regular_file(path)
        if why == "does not exist":
            known = ", ".join(["synth", *HUB_DATASETS])
            raise DatasetError(f"{name}: no such file and not a known dataset", hint=f"known datasets: {known}")
        if why is not None:
            raise DatasetError(f"{name} {why}", hint="pass a .jsonl, .json, .csv or .parquet file")
        problems = _problems_from_rows(
            path, question_field=question_field, answer_field=answer_field, id_field=id_field,
            kind=parse_kind(kind), limit=limit, field_flags=field_flags,
        )  # fmt: skip
    logger.info("loaded %d problems from %s", len(problems), name)
    return problems
