"""Issue #28: hints only name what exists. Every hint in the code (a ``hint=`` text, a "try ..." text, an
item of a ``tries`` list) is walked: each flag it names must be an option of every command it can be
shown for (from click's command objects), and each ``edgekv VERB ...`` line it shows must parse as that
command's syntax. Which verbs can show a module's hints is written here, from the outside."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

import edgekv
from edgekv.cli import VERBS, cli

ROOT = Path(edgekv.__file__).parent

# module (or package) prefix, or module:function -> the verbs whose runs reach it. The longest key wins.
SHOWN_FOR: dict[str, set[str]] = {
    "model/": set(VERBS) - {"convert"},  # the GGUF reader: every verb that reads a GGUF or plans from one
    "model/markers": {"eval", "serve"},  # --think-markers, parsed by eval's and serve's requests only
    "requests/pick": {"pick", "download"},
    "requests/card": {"pick", "download", "run"},
    "requests/flags": {"run", "bench"},
    "requests/overlay": {"run", "eval"},
    "requests/download": {"download"},
    "requests/inspect": {"inspect"},
    "requests/bench": {"bench"},
    "requests/sweep": {"sweep"},
    "convert/": {"convert"},
    "hub/names": {"download"},
    "eval/datasets": {"eval", "sweep"},
    "eval/datasets:_problems_from_rows": {"eval"},  # the field flags' hints: sweep passes field_flags=False
    "eval/results": {"eval", "sweep", "frontier", "calibrate"},
    "eval/results:read_results": {"eval", "sweep"},  # the writer's read of --out
    "eval/results:writer_lock": {"eval", "sweep"},
    "eval/sweep": {"sweep"},
    "eval/plot": {"frontier"},
    "eval/run": {"eval", "sweep"},
    "plan/preflight": {"run", "bench"},  # eval and sweep re-raise its refusal with their own hint (eval/run)
    "plan/pick": {"pick", "download"},
    "plan/policy": {"pick", "download"},
    "plan/split_plans": {"pick", "download"},
    "plan/devices": {"pick", "download", "run", "bench"},
    "store/cards": {"pick", "download", "run"},
    "store/profiles": {"calibrate"},
    "store/planfile": {"run", "eval"},
    "store/catalog": {"pick", "download", "sweep"},
    "fsutil": {"convert", "download", "calibrate", "sweep", "bench"},
    "llama/build": {"run", "bench"},
    "llama/batch": {"run"},
    "llama/sampling": {"eval", "sweep", "bench"},
    "llama/session": {"run", "bench"},
    "llama/quantize": {"convert"},
    "hub/catalog_add": {"catalog"},
    "store/user_catalog": {"catalog"},
}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
COMMAND = re.compile(r"edgekv ([a-z]+)((?: [^,;:()`]*)?)")
GLOBAL_FLAGS = {"--help", "--version", "--verbose", "--quiet"}


def verbs_for(rel: str) -> set[str] | None:
    """``rel`` is module.py or module.py:function."""
    stem = rel.replace(".py", "")
    module = stem.split(":")[0]
    if module.startswith(("commands/", "requests/")) and module.split("/")[1] in VERBS:
        return {module.split("/")[1]} | SHOWN_FOR.get(module, set())
    best = max((k for k in SHOWN_FOR if stem.startswith(k)), key=len, default=None)
    return SHOWN_FOR[best] if best else None


def _texts(node: ast.AST) -> list[str]:
    """The literal text of a str constant or f-string (a placeholder becomes X)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)]
    if isinstance(node, ast.IfExp):
        return _texts(node.body) + _texts(node.orelse)
    if isinstance(node, ast.BinOp):
        return _texts(node.left) + _texts(node.right)
    return []


def _in_functions(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every node with the name of its outermost enclosing function ('' at module level)."""
    out: list[tuple[str, ast.AST]] = []
    for top in ast.iter_child_nodes(tree):
        name = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else ""
        out += [(name, node) for node in ast.walk(top)]
    return out


def hints() -> list[tuple[str, int, str]]:
    """(module[:function], line, text) of every hint text in edgekv."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module = str(path.relative_to(ROOT))
        for func, node in _in_functions(ast.parse(path.read_text())):
            rel = f"{module}:{func}" if func else module
            found: list[str] = []
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "hint":
                        found += _texts(kw.value)
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in ("append", "extend") and isinstance(f.value, ast.Name):
                    if f.value.id == "tries":
                        for arg in node.args:
                            found += _texts(arg)
                            if isinstance(arg, ast.List):
                                found += [t for e in arg.elts for t in _texts(e)]
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "tries" for t in node.targets
            ):
                if isinstance(node.value, ast.List):
                    found += [t for e in node.value.elts for t in _texts(e)]
            elif isinstance(node, (ast.Constant, ast.JoinedStr)):
                found += [t for t in _texts(node) if re.match(r"\s*(try|Try) ", t)]
            out += [(rel, getattr(node, "lineno", 0), t) for t in found if FLAG.search(t) or _commands(t)]
    return out


def _commands(text: str) -> list[re.Match[str]]:
    return [m for m in COMMAND.finditer(text) if m.group(1) in VERBS]


HINTS = hints()


def options_of(verb: str) -> set[str]:
    cmd = cli.get_command(click.Context(cli), verb)
    assert cmd is not None
    cmds = [cmd, *getattr(cmd, "commands", {}).values()]  # a group (catalog): its subcommands' options too
    names = {o for c in cmds for p in c.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
    return names | GLOBAL_FLAGS


def test_the_walk_finds_the_hints() -> None:
    assert len(HINTS) >= 60
    assert {rel.split("/")[0] for rel, _, _ in HINTS} >= {"plan", "llama", "eval", "requests", "convert", "hub"}


@pytest.mark.parametrize(("rel", "line", "text"), HINTS, ids=[f"{r}:{n}" for r, n, _ in HINTS])
def test_every_flag_a_hint_names_exists_where_it_is_shown(rel: str, line: int, text: str) -> None:
    verbs = verbs_for(rel)
    assert verbs, f"{rel}:{line}: which verbs show this hint? add the module to SHOWN_FOR ({text!r})"
    for m in reversed(_commands(text)):  # a command it shows is checked against its own verb (below)
        text = text[: m.start()] + text[m.end() :]
    for flag in FLAG.findall(text):
        if flag.startswith("--no-") and flag.removeprefix("--no-") in {
            o.lstrip("-") for v in verbs for o in options_of(v)
        }:
            continue
        missing = sorted(v for v in verbs if flag not in options_of(v))
        assert not missing, f"{rel}:{line}: hint {text!r} names {flag}, which {', '.join(missing)} do not have"


COMMANDS = [(rel, line, m.group(1), m.group(2).strip()) for rel, line, text in HINTS for m in _commands(text)]


@pytest.mark.parametrize(("rel", "line", "verb", "rest"), COMMANDS, ids=[f"{r}:{n}" for r, n, _, _ in COMMANDS])
def test_every_command_a_hint_shows_parses(rel: str, line: int, verb: str, rest: str) -> None:
    cmd = cli.get_command(click.Context(cli), verb)
    assert cmd is not None
    args = shlex.split(rest.removesuffix("."))
    if isinstance(cmd, click.Group) and args and args[0] in cmd.commands:  # edgekv catalog add ...
        cmd, args = cmd.commands[args[0]], args[1:]
    ctx = click.Context(cmd, info_name=verb, resilient_parsing=True, help_option_names=["-h", "--help"])  # as cli
    parser = cmd.make_parser(ctx)
    _opts, positional, _order = parser.parse_args(args)  # an unknown option raises NoSuchOption
    n_args = [p.nargs for p in cmd.params if isinstance(p, click.Argument)]
    assert -1 in n_args or len(positional) <= sum(n_args), (
        f"{rel}:{line}: `edgekv {verb} {rest}` has extra {positional}"
    )


def test_download_hint_of_a_plan_names_the_file_with_file() -> None:
    """A plan's model not on the machine: the hint said `edgekv download REPO FILE`, which download reads
    as two arguments ("unexpected extra argument"); it takes the file as --file."""
    texts = [t for rel, _, t in HINTS if rel.startswith("requests/overlay.py") and "edgekv download" in t]
    assert texts and all("--file X" in t for t in texts)


def test_eval_does_not_fit_hint_names_evals_flags(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    """eval's pre-flight refusal said "try --ctx 16k, fewer --parallel samples": eval has neither."""
    pytest.importorskip("llama_cpp")
    from tests.cli.test_hostile_cli import one_line

    line = one_line(capsys, "eval", tiny, "--dataset", "synth", "--limit", "1", "--budget", "16m", "--vram", "1G")
    assert "short" in line and "--ctx" not in line and "--parallel" not in line
    assert all(flag in options_of("eval") for flag in FLAG.findall(line.split(". Try ")[-1]))


def test_sweeps_dataset_errors_name_no_eval_field_flag(tmp_path: Path) -> None:
    """sweep reads a local dataset too, but has no --question-field/--id-field: its errors named them."""
    from edgekv.errors import DatasetError
    from edgekv.eval.datasets import load_problems

    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n{"id": "a", "question": "2+2?", "answer": "4"}\n')
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"q": "1+1?", "answer": "2"}\n')
    for path in (dup, nofield):
        with pytest.raises(DatasetError) as e:
            load_problems(path, field_flags=False)
        assert "--" not in str(e.value), e.value
        with pytest.raises(DatasetError) as e:
            load_problems(path)  # eval's: the flag that picks the field
        assert "--id-field" in str(e.value) or "--question-field" in str(e.value)
