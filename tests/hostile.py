# ruff: noqa: E501  (tables of cases, one per line)
"""The hostile-input cases of issue #28, table-driven and seeded: every verb under wrong numbers and
wrong files. ``python -m tests.hostile`` prints the counts by verb and by kind.

A case is a command line whose words may name fixtures (TINY: a tiny GGUF, CKPT: a tiny checkpoint,
RESULTS: a sweep's results, PLAN: a good plan file) or files the case brings (``files``: name ->
bytes, written to the case's folder, named ``@name`` in the words). Every case is wrong input: the
suite asserts exit 1 or 2 (``expect`` where the kind is known: 2 usage, 1 data), never 0, no traceback
or "internal error" line, no native crash, under 2 GiB and 30 s.

Kinds: ``number`` (each numeric option of each verb, from the click commands: below and above its
documented range, nan, inf, 1e999, words, empty, a unit where none belongs), ``file`` (datasets in
JSONL/JSON/CSV, results, sweep folders, plan files, profiles, GGUFs, checkpoints: empty, not UTF-8,
binary, truncated, wrong schema, wrong types, deeply nested, too large, a folder, a FIFO), ``args``
(flags that cannot go together, missing arguments). Mutations (a bad byte at a seeded place, a seeded
cut inside the last record) use ``random.Random(SEED)``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

SEED = 28

# How each verb is reached up to its flags' parsing (a case adds its flag or swaps a file in).
BASE: dict[str, list[str]] = {
    "pick": ["pick", "--vram", "8G"],
    "inspect": ["inspect", "TINY", "--vram", "8G"],
    "run": ["run", "TINY", "--prompt", "hi", "--vram", "8G"],
    "bench": ["bench", "TINY"],
    "convert": ["convert", "CKPT", "--outdir", "@out"],
    "download": ["download", "--vram", "8G", "--dry-run"],
    "eval": ["eval", "TINY", "--dataset", "synth", "--limit", "1"],
    "sweep": ["sweep", "--vram", "8G", "--dataset", "synth", "--dry-run", "--out", "@out"],
    "frontier": ["frontier", "RESULTS"],
    "calibrate": ["calibrate", "RESULTS"],
    "serve": ["serve", "TINY", "--vram", "8G"],
}
NEEDS = {("pick", "--max-time"): ["--gpu", "RTX 4060"], ("download", "--max-time"): ["--gpu", "RTX 4060"],
         ("pick", "--tensor-split"): ["--vram", "8G,8G"], ("download", "--tensor-split"): ["--vram", "8G,8G"],
         ("pick", "--e2"): ["--e1", "1G"], ("download", "--e2"): ["--e1", "1G"]}  # fmt: skip


@dataclass(frozen=True)
class Case:
    verb: str
    kind: str  # number | file | args
    name: str
    args: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    expect: int | None = None  # 2 usage, 1 data, None: either
    wrong: bool = True  # False: a seeded mutation that may still be a valid file (exit 0 allowed)
    own_process: bool = False  # only in a subprocess (llama.cpp may load what it is given)


def _with(verb: str, option: str, value: str) -> list[str]:
    args = list(BASE[verb])
    if option in args:
        i = args.index(option)
        del args[i : i + 2]
    return [*args, *NEEDS.get((verb, option), []), f"{option}={value}"]


def _below(lo: float, unit: str) -> str:
    return {"tokens": "-1", "bytes": "-1G", "seconds": "-5s", "share": "-1,1"}.get(
        unit, str(int(lo) - 1) if float(lo).is_integer() else str(lo - 0.5)
    )


def _above(hi: float, unit: str) -> str:
    return {"tokens": "16385k", "bytes": "1025T", "seconds": "9000h", "share": "2000000,1",
            "temperature": "101", "fraction": "0.75" if hi == 0.5 else "1.5"}.get(unit, str(int(hi) + 1))  # fmt: skip


WORDS = ["nan", "inf", "-inf", "1e999", "abc", "", "8X", "0x10"]


def number_cases(options: dict[str, list[str]], rng: random.Random) -> list[Case]:
    """``options``: verb -> its numeric options (found by the caller from the click commands). Each gets
    a value past each end of its range and three of WORDS, seeded."""
    from edgekv.plan.bounds import OPTIONS

    out = []
    for verb, names in options.items():
        for name in names:
            b = OPTIONS[name]
            values = [_above(b.hi, b.unit), _below(b.lo, b.unit), *rng.sample(WORDS, 3)]
            for v in values:
                if v in ("0x10",) and b.unit in ("bytes", "tokens"):
                    continue
                out.append(Case(verb, "number", f"{name}={v!r}", tuple(_with(verb, name, v))))
    return out


# -- files -----------------------------------------------------------------------------------------

GOOD_ROWS = [{"id": f"p{i}", "question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(1, 6)]
GOOD = {
    "jsonl": "".join(json.dumps(r) + "\n" for r in GOOD_ROWS).encode(),
    "json": json.dumps(GOOD_ROWS, indent=1).encode(),
    "csv": ("id,question,answer\n" + "".join(f"{r['id']},{r['question']},{r['answer']}\n" for r in GOOD_ROWS)).encode(),
}
DEEP = b"[" * 100_000 + b"]" * 100_000
FAST = ("--limit", "5", "--budget", "4", "--samples", "1", "--threads", "1")  # if a wrong file were run: seconds


def _dataset_bad(ext: str) -> dict[str, bytes]:
    rows = GOOD_ROWS
    jl = {
        "empty": b"",
        "blank lines": b"\n\n  \n",
        "latin-1": GOOD[ext].replace(b"What", b"Wh\xe4t"),
        "utf-16": GOOD[ext].decode().encode("utf-16"),
        "binary": bytes(range(256)) * 8,
        "nul bytes": b"\x00" * 4096,
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
        "deeply nested": DEEP if ext != "csv" else b"question,answer\n" + b'"' + b"[" * 200_000 + b'",1\n',
        "line over 1 MiB": (b'{"question": "' + b"x" * (1 << 21) + b'", "answer": "1"}\n') if ext != "csv"
        else b"question,answer\n" + b"x" * (1 << 21) + b",1\n",
    }  # fmt: skip
    if ext == "jsonl":
        jl |= {
            "a list per line": b"[1, 2]\n[3, 4]\n",
            "no question": b'{"q": "1+1?", "answer": "2"}\n',
            "no answer": b'{"question": "1+1?"}\n',
            "null question": b'{"question": null, "answer": "2"}\n',
            "empty question": b'{"question": "", "answer": "2"}\n',
            "question a list": b'{"question": ["a", "b"], "answer": "2"}\n',
            "question an object": b'{"question": {"a": 1}, "answer": "2"}\n',
            "answer an object": b'{"question": "1+1?", "answer": {"x": 1}}\n',
            "not JSON": b"question: 1+1?\nanswer: 2\n",
            "duplicate ids": b'{"id": "a", "question": "1?", "answer": "1"}\n{"id": "a", "question": "2?", "answer": "2"}\n',
            "a number per line": b"1\n2\n",
            "a string per line": b'"q"\n',
            "NaN answer": b'{"question": "1+1?", "answer": NaN}\n',
        }  # fmt: skip
    elif ext == "json":
        jl |= {
            "a list of lists": b"[[1, 2], [3]]",
            "truncated": GOOD["json"][: len(GOOD["json"]) // 2],
            "empty list": b"[]",
            "no answer": json.dumps([{"question": r["question"]} for r in rows]).encode(),
            "answer a list": json.dumps([{"question": "1+1?", "answer": [2]}]).encode(),
            "a string": b'"hello"',
            "null": b"null",
        }
    else:
        jl |= {
            "header only": b"question,answer\n",
            "no answer column": b"question\n1+1?\n",
            "more values than header": b"question,answer\n1+1?,2,3\n",
            "empty answer": b"question,answer\n1+1?,\n",
            "unclosed quote": b'question,answer\n"1+1?,2\n',
            "header is blank": b"\nquestion,answer\n",
        }
    return jl


def _mutations(ext: str, rng: random.Random, n: int) -> dict[str, bytes]:
    """Seeded: a byte that is never UTF-8 at a random place; a cut inside the last record."""
    good = GOOD[ext]
    out = {}
    for i in range(n):
        at = rng.randrange(len(good))
        out[f"0xff at {at}"] = good[:at] + b"\xff" + good[at:]
        last = good.rstrip(b"\n").rfind(b"\n") + 1
        end = len(good.rstrip(b"\n]")) - (1 if ext != "json" else 0)
        cut = rng.randrange(last + 1, max(end, last + 2)) if i % 2 == 0 else rng.randrange(1, len(good) - 2)
        if ext == "json":
            cut = rng.randrange(1, len(good) - 1)  # the closing ] is always cut
        if ext == "json" or i % 2 == 0:
            out[f"cut at {cut}"] = good[:cut]
    return out


def dataset_cases(rng: random.Random) -> list[Case]:
    out = []
    for ext in ("jsonl", "json", "csv"):
        for what, data in (_dataset_bad(ext) | _mutations(ext, rng, 6)).items():
            out.append(Case("eval", "file", f"dataset .{ext}: {what}",
                            ("eval", "TINY", "--dataset", f"@set.{ext}", *FAST), {f"set.{ext}": data}, 1))  # fmt: skip
    out += [
        Case("eval", "file", "dataset: a folder", ("eval", "TINY", "--dataset", "@dir"), {"dir/x.jsonl": GOOD["jsonl"]}, 1),
        Case("eval", "file", "dataset: unknown suffix", ("eval", "TINY", "--dataset", "@set.txt"), {"set.txt": b"1+1?\n"}, 1),
        Case("eval", "file", "dataset: no such file", ("eval", "TINY", "--dataset", "@missing.jsonl"), {}, 1),
        Case("eval", "file", "dataset: parquet that is not", ("eval", "TINY", "--dataset", "@set.parquet"),
             {"set.parquet": GOOD["jsonl"]}, 1),
        Case("eval", "file", "dataset: a FIFO", ("eval", "TINY", "--dataset", "@fifo.jsonl"), {"fifo.jsonl": b"FIFO"}, 1),
    ]  # fmt: skip
    return out


RESULT_LINE = {"schema": 1, "type": "problem", "config_id": "c1", "problem_id": "p1", "correct": [True],
               "maj_correct": [True], "config": {"model": "m", "quant": "Q8_0"}}  # fmt: skip


def _line(**change: object) -> bytes:
    row = dict(RESULT_LINE)
    for k, v in change.items():
        if v is None:
            row.pop(k, None)
        else:
            row[k] = v
    return (json.dumps(row) + "\n").encode()


def results_bad(good: bytes, rng: random.Random) -> dict[str, bytes]:
    bad = {
        "empty": b"",
        "binary": bytes(range(256)),
        "latin-1 line": good + b'{"note": "caf\xe9"}\n',
        "utf-16": good.decode().encode("utf-16"),
        "text": b"hello world\n",
        "JSON, not results": b'{"a": 1}\n[1, 2]\n',
        "schema 9": _line(schema=9),
        "schema a string": _line(schema="1"),
        "no config_id": _line(config_id=None),
        "no correct": _line(correct=None),
        "correct a string": _line(correct="yes"),
        "correct a number": _line(correct=7),
        "config a list": _line(config=[1]),
        "config null": _line(config=None),
        "config's fields wrong": _line(config={"weights_bytes": "big", "kv_bytes_per_token": [], "budget": "x"}),
        "a damaged middle line": good + b'{"schema": 1, "type": "prob\n' + good,
        "deeply nested": DEEP + b"\n",
        "NaN everywhere": _line(correct=[float("nan")]).replace(b"NaN", b"NaN"),
        "a line over 64 MiB": b"",  # written sparse by the suite (see SPARSE)
    }
    for _ in range(4):
        at = rng.randrange(len(good) - 1)
        bad[f"0xff at {at}"] = good[:at] + b"\xff" + good[at:]
    return bad


SPARSE = {"a line over 64 MiB": 65 << 20}  # names whose file is this many zero bytes, without a newline


def results_cases(good: bytes, rng: random.Random) -> list[Case]:
    out = []
    for what, data in results_bad(good, rng).items():
        for verb in ("frontier", "calibrate"):
            out.append(Case(verb, "file", f"results: {what}", (verb, "@r.jsonl"), {"r.jsonl": data}, 1))
        if what not in ("empty", "config's fields wrong"):  # another configuration's line: eval appends its own
            out.append(Case("eval", "file", f"--out: {what}", ("eval", "TINY", "--dataset", "synth", "--limit", "1",
                                                                "--budget", "4", "--out", "@r.jsonl"), {"r.jsonl": data}, 1))  # fmt: skip
    folders = {
        "an empty folder": {"sw/.keep": b""},
        "a folder of non-JSON files": {"sw/a.txt": b"hi", "sw/b.bin": b"\x00\xff"},
        "a folder with a binary .jsonl": {"sw/results/r.jsonl": b"\x89PNG\r\n\x1a\n\x00\xff"},
        "a folder with a text .jsonl": {"sw/results/r.jsonl": b"hello\n"},
        "a binary manifest": {"sw/sweep.json": b"\x89PNG\r\n\x1a\n\x00\xff", "sw/results/r.jsonl": good},
        "a manifest that is a list": {"sw/sweep.json": b"[1, 2]", "sw/results/r.jsonl": good},
        "a manifest of wrong types": {"sw/sweep.json": b'{"cards": "8G", "picks": 7, "items": {}}',
                                      "sw/results/r.jsonl": good},
        "a deeply nested manifest": {"sw/sweep.json": DEEP, "sw/results/r.jsonl": good},
    }  # fmt: skip
    for what, files in folders.items():
        manifest = "manifest" in what  # calibrate reads no manifest; sweep reads only its manifest
        for verb in ("frontier", "calibrate") if not manifest else ("frontier",):
            out.append(Case(verb, "file", f"sweep folder: {what}", (verb, "@sw"), files, 1))
        if manifest:
            out.append(Case("sweep", "file", f"sweep --out: {what}", ("sweep", "--vram", "8G", "--dataset", "synth",
                                                                       "--dry-run", "--out", "@sw"), files, 1))  # fmt: skip
    return out


def plan_bad(good: dict) -> dict[str, bytes]:
    def edit(**change: object) -> bytes:
        d = json.loads(json.dumps(good))
        for k, v in change.items():
            (d if k in ("vram_bytes", "schema", "plans", "task") else d["plans"][0])[k] = v
        return json.dumps(d).encode()

    return {
        "empty": b"",
        "binary": bytes(range(256)),
        "latin-1": json.dumps(good).replace("tiny", "t\u00e9ny").encode("latin-1"),
        "not JSON": b"{plan",
        "a list": b"[1, 2]",
        "no plans": edit(plans=[]),
        "plans an object": edit(plans={"a": 1}),
        "schema 9": edit(schema=9),
        "vram a string": edit(vram_bytes="8G"),
        "vram negative": edit(vram_bytes=-1),
        "n_ctx negative": edit(n_ctx=-5),
        "n_ctx huge": edit(n_ctx=2**40),
        "n_ctx a string": edit(n_ctx="4k"),
        "parallel 1000": edit(parallel=1000),
        "parallel zero": edit(parallel=0),
        "type_k unknown": edit(type_k="q9_9"),
        "path missing": edit(path="/nonexistent/x.gguf", file="x.gguf"),
        "path a number": edit(path=7),
        "n_gpu_layers -5": edit(n_gpu_layers=-5),
        "deeply nested": DEEP,
        "over 1 MiB": b'{"plans": [' + b" " * (2 << 20) + b"]}",
    }


def plan_cases(good: dict) -> list[Case]:
    out = []
    for what, data in plan_bad(good).items():
        out.append(Case("run", "file", f"plan: {what}", ("run", "--plan", "@plan.json", "--prompt", "hi",
                                                          "--max-tokens", "2"), {"plan.json": data}, 1))  # fmt: skip
        out.append(Case("eval", "file", f"plan: {what}", ("eval", "--plan", "@plan.json", "--dataset", "synth",
                                                           *FAST), {"plan.json": data}, 1))  # fmt: skip
    return out


def profile_bad() -> dict[str, bytes]:
    good = {"schema": 1, "name": "p", "policy": {}}
    return {
        "empty": b"",
        "binary": bytes(range(256)),
        "latin-1": b'{"schema": 1, "name": "caf\xe9", "policy": {}}',
        "not JSON": b"{profile",
        "a list": b"[1]",
        "schema 9": json.dumps(good | {"schema": 9}).encode(),
        "policy a list": json.dumps(good | {"policy": [1]}).encode(),
        "e1 a string": json.dumps(good | {"policy": {"e1_bytes": "big"}}).encode(),
        "e1 negative": json.dumps(good | {"policy": {"e1_bytes": -5}}).encode(),
        "e1 a float": json.dumps(good | {"policy": {"e1_bytes": 1.5e300}}).encode(),
        "saturation nan": b'{"schema": 1, "name": "p", "policy": {"saturation_tokens": NaN}}',
        "flat_precision a string": json.dumps(good | {"policy": {"flat_precision": "yes"}}).encode(),
        "by accounting a list": json.dumps(good | {"policy": {"parallel_min_bytes_by_accounting": [1]}}).encode(),
        "deeply nested": DEEP,
        "over 1 MiB": b'{"schema": 1, "policy": {}, "pad": "' + b"x" * (2 << 20) + b'"}',
    }  # fmt: skip


def profile_cases() -> list[Case]:
    return [Case(verb, "file", f"profile: {what}", (verb, "--vram", "8G", "--profile", "@p.json", *extra), {"p.json": d}, 1)
            for what, d in profile_bad().items()
            for verb, extra in (("pick", ()), ("download", ("--dry-run",)))]  # fmt: skip


CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 32, "intermediate_size": 128}).encode()  # fmt: skip


def checkpoint_cases() -> list[Case]:
    """A checkpoint folder that is not one (the good checkpoint's own breakages are tests.ckptgen's)."""
    folders = {
        "an empty folder": {"ck/.keep": b""},
        "config not JSON": {"ck/config.json": b"{nope"},
        "config a list": {"ck/config.json": b"[1, 2]"},
        "config binary": {"ck/config.json": bytes(range(256))},
        "config latin-1": {"ck/config.json": b'{"architectures": ["Llama\xe9"]}'},
        "config deeply nested": {"ck/config.json": DEEP},
        "no weights": {"ck/config.json": CONFIG},
        "weights not safetensors": {"ck/config.json": CONFIG, "ck/model.safetensors": b"\x00" * 64},
        "weights a pickle": {"ck/config.json": CONFIG, "ck/pytorch_model.bin": b"\x80\x04K\x01."},
        "safetensors header too long": {
            "ck/config.json": CONFIG,
            "ck/model.safetensors": (2**40).to_bytes(8, "little"),
        },
    }
    return [Case("convert", "file", f"checkpoint: {what}", ("convert", "@ck", "--outdir", "@out"), files, 1)
            for what, files in folders.items()]  # fmt: skip


def gguf_cases(rng: random.Random, n: int) -> list[Case]:
    """Seeded GGUF header mutations (tests.gguffuzz) through the verbs that read a GGUF before loading it."""
    from tests import gguffuzz

    out = []
    verbs = [("inspect", ("inspect", "@m.gguf")), ("run", ("run", "@m.gguf", "--prompt", "hi", "--vram", "1G")),
             ("bench", ("bench", "@m.gguf", "--vram", "1G")), ("pick", ("pick", "--gguf", "@m.gguf", "--vram", "8G")),
             ("eval", ("eval", "@m.gguf", "--dataset", "synth", "--limit", "1", "--vram", "1G"))]  # fmt: skip
    fixed = {"empty": b"", "not GGUF": b"GGML" + bytes(60), "truncated magic": b"GGU", "a text file": b"hello\n" * 10}
    for what, data in fixed.items():
        for verb, args in verbs:
            out.append(Case(verb, "file", f"gguf: {what}", args, {"m.gguf": data}, 1))
    for i in range(n):  # header mutations: the reader is pure Python (inspect, pick) ...
        cls, base, data = gguffuzz.case_file(rng.randrange(10**6), SEED)
        verb, args = verbs[(0, 3)[i % 2]]  # inspect, pick
        out.append(Case(verb, "file", f"gguf mutation {i}: {cls} of {base}", args, {"m.gguf": data}, None,
                        wrong=cls in BROKEN))  # fmt: skip
    deep = ["tensor_info", "model_values", "bytes", "alignment", "nesting", "counts", "array", "value_type"]
    for i, cls in enumerate(deep):  # ... and through run, where llama.cpp loads what the reader accepts
        data = gguffuzz.mutate(cls, gguffuzz.BASES["model"], rng)
        out.append(Case("run", "file", f"gguf mutation run {i}: {cls}", (*verbs[1][1], "--max-tokens", "2"),
                        {"m.gguf": data}, None, wrong=cls in BROKEN, own_process=True))  # fmt: skip
    return out


# gguffuzz classes whose files are always broken (the others may leave a valid header)
BROKEN = {"magic", "version", "truncate", "counts"}


def arg_cases() -> list[Case]:
    """Flags that cannot go together, arguments missing or extra."""
    rows = [
        ("pick", ["pick"], 1), ("pick", ["pick", "--vram", "8G", "--gguf", "TINY", "--repo", "a/b"], None),
        ("pick", ["pick", "--vram", "8G", "--max-time", "2m"], None), ("pick", ["pick", "--vram", "8G", "--kv", "q9"], 2),
        ("pick", ["pick", "--vram", "8G", "--quants", ","], None), ("pick", ["pick", "--vram", "8G", "--family", "nope"], 1),
        ("pick", ["pick", "--vram", "8G", "--profile", "../x"], None), ("pick", ["pick", "--gpu", "no such card 9000"], 1),
        ("inspect", ["inspect", "@none.gguf"], 1), ("inspect", ["inspect", "TINY", "extra"], None),
        ("inspect", ["inspect", "a/b", "--remote"], None), ("inspect", ["inspect", "@dir"], 1),
        ("run", ["run", "--prompt", "hi"], 2), ("run", ["run", "TINY", "--chat", "--prompt", "hi"], 2),
        ("run", ["run", "TINY", "--chat", "--parallel", "2"], 2), ("run", ["run", "@none.gguf", "--prompt", "x"], 1),
        ("run", ["run", "TINY", "--prompt", "hi", "--tensor-split", "3,2", "--vram", "8G"], 2),
        ("run", ["run", "TINY", "--prompt", "hi", "--kv", "q9_9"], 2),
        ("run", ["run", "TINY", "--prompt", "hi", "--vram", "1M"], 1),
        ("run", ["run", "TINY", "--prompt", "hi", "--ctx", "0"], 2),
        ("bench", ["bench", "TINY", "--json", "--csv"], 2), ("bench", ["bench", "TINY", "--n-prompt", "0", "--n-gen", "0"], 2),
        ("bench", ["bench", "TINY", "--kv", ""], None), ("bench", ["bench", "TINY", "--ctx", ","], 1),
        ("bench", ["bench", "TINY", "--parallel", "x"], None), ("bench", ["bench", "@none.gguf"], 1),
        ("convert", ["convert", "@none"], 1), ("convert", ["convert", "CKPT", "--quants", ""], 2),
        ("convert", ["convert", "CKPT", "--quants", "Q9_9"], 2), ("convert", ["convert", "CKPT", "--outtype", "f8"], 2),
        ("convert", ["convert", "CKPT", "--imatrix", "@none.dat"], 1), ("convert", ["convert", "@file.txt"], None),
        ("convert", ["convert", "CKPT", "--quants", "F16"], None), ("convert", ["convert", "CKPT", "--quants", "Q4_K_M,,Q9"], 2),
        ("convert", ["convert", "CKPT", "--outdir", "@file.txt"], 2), ("convert", ["convert", "CKPT", "--converter", "@none.py"], 1),
        ("convert", ["convert", "CKPT", "--imatrix", "@dir"], 2), ("convert", ["convert", "CKPT", "--imatrix", "@file.txt"], None),
        ("download", ["download"], None), ("download", ["download", "a/b", "--vram", "8G", "--quant", "Q8_0"], None),
        ("download", ["download", "--vram", "8G", "--file", "x.gguf"], None), ("download", ["download", "--vram", "0"], 2),
        ("eval", ["eval", "--dataset", "synth"], 2), ("eval", ["eval", "TINY"], 2),
        ("eval", ["eval", "TINY", "--dataset", "nope", *FAST], 1),
        ("eval", ["eval", "TINY", "--dataset", "synth", "--question-field", "q", *FAST], None),
        ("eval", ["eval", "TINY", "--dataset", "synth", "--budget", "-1k", "--limit", "1", "--samples", "1"], 2),
        ("eval", ["eval", "TINY", "--dataset", "synth", "--kv", "q9", *FAST], 2),
        ("eval", ["eval", "TINY", "--dataset", "synth", "--out", "@dir", *FAST], None),
        ("sweep", ["sweep", "--dataset", "synth"], 2), ("sweep", ["sweep", "--vram", "8G"], 2),
        ("sweep", ["sweep", "--vram", "", "--dataset", "synth", "--dry-run"], None),
        ("sweep", ["sweep", "--vram", "8G", "--dataset", "synth", "--kv", "q9", "--dry-run"], 2),
        ("sweep", ["sweep", "--vram", "8G", "--dataset", "synth", "--gguf", "@none.gguf", "--dry-run"], None),
        ("sweep", ["sweep", "--vram", "8G", "--dataset", "synth", "--out", "@file.txt", "--dry-run"], None),
        ("frontier", ["frontier"], 2), ("frontier", ["frontier", "@none"], 2),
        ("frontier", ["frontier", "RESULTS", "--png", "@out.txt"], 2),
        ("calibrate", ["calibrate"], 2), ("calibrate", ["calibrate", "@none"], 2),
        ("catalog", ["catalog"], 2), ("catalog", ["catalog", "frob"], 2), ("catalog", ["catalog", "add"], None),
        ("catalog", ["catalog", "remove"], 2), ("catalog", ["catalog", "remove", "no-such-entry"], 1),
        ("catalog", ["catalog", "add", "a/b", "--quants", "Q9_9"], None), ("catalog", ["catalog", "add", "not_a_repo!"], 1),
        ("catalog", ["catalog", "list", "extra"], 2), ("catalog", ["catalog", "remove", "../x"], 1),
        ("catalog", ["catalog", "add", "a/b", "--quants", ","], None), ("catalog", ["catalog", "list", "--bogus"], 2),
        ("catalog", ["catalog", "add", "a/b", "--name", "../evil"], None),
        # serve's own pre-flight (a GGUF that is not one, a cap too small) runs inside serve(), which the suite
        # replaces (a wrong input that got through would block): only what is refused before it is here
        ("serve", ["serve", "@none.gguf", "--vram", "8G"], 1), ("serve", ["serve", "TINY", "--vram", "8G", "--kv", "q9"], 2),
        ("serve", ["serve", "TINY", "--vram", "8G", "--ctx", "0"], 2), ("serve", ["serve", "TINY", "--vram", "8G", "--max-body", "1"], 2),
        ("calibrate", ["calibrate", "RESULTS", "--name", "../evil"], None),
        *[(verb, [*base, "--think-markers", bad], 2)
          for verb, base in (("eval", ["eval", "TINY", "--dataset", "synth", *FAST]), ("serve", ["serve", "TINY", "--vram", "8G"]))
          for bad in ("[THINK]", ",", "<t>,<t>", "x" * 65 + ",y", "a,b,c")],
    ]  # fmt: skip
    extra = {"file.txt": b"hello\n", "dir/.keep": b"", "m.gguf": b"GGUF" + bytes(20)}
    return [Case(v, "args", " ".join(a[1:]) or "(nothing)", tuple(a), extra, e) for v, a, e in rows]


def all_cases(options: dict[str, list[str]], *, good_results: bytes, good_plan: dict) -> list[Case]:
    rng = random.Random(SEED)
    return [
        *number_cases(options, rng),
        *dataset_cases(rng),
        *results_cases(good_results, rng),
        *plan_cases(good_plan),
        *profile_cases(),
        *checkpoint_cases(),
        *gguf_cases(rng, 40),
        *arg_cases(),
    ]


def counts(cases: list[Case]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    return Counter(c.verb for c in cases), Counter((c.verb, c.kind) for c in cases)


if __name__ == "__main__":  # python -m tests.hostile: the counts by verb and kind
    from tests.cli.test_hostile_suite import CASES

    by_verb, by_kind = counts(CASES)
    kinds = sorted({k for _, k in by_kind})
    print(f"{'verb':10} " + " ".join(f"{k:>7}" for k in kinds) + f" {'total':>7}")
    for verb, n in by_verb.most_common():
        print(f"{verb:10} " + " ".join(f"{by_kind[(verb, k)]:>7}" for k in kinds) + f" {n:>7}")
    print(f"{'all':10} " + " ".join(f"{sum(n for (_, k), n in by_kind.items() if k == kk):>7}" for kk in kinds)
          + f" {len(CASES):>7}")  # fmt: skip
