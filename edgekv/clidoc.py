"""The CLI reference, ``docs/cli.md``, generated from the click commands.

``python -m edgekv.clidoc > docs/cli.md`` after changing a command, an option or a help text;
``tests/test_docs.py`` (and ``.ci/run``) fail while the page differs from this output. For every
command (and subcommand): its usage line, its help text as written (no rewrapping, so nothing depends on the
terminal's width) and a table of every option with its type, default and help. Nothing on
``edgekv pick``'s path imports this module.
"""

from __future__ import annotations

import inspect
import sys

import click

from edgekv.cli import VERBS, cli

HEADER = """\
# What does every command and option do?

Generated from the click commands by `python -m edgekv.clidoc > docs/cli.md`; do not edit it by
hand (`tests/test_docs.py` fails when this page and the commands differ). The same text, wrapped
to the terminal, is each command's `--help`.
"""


def help_text(cmd: click.Command) -> str:
    """The help as the docstring writes it: common indent removed, ``\\b`` markers dropped, cut at ``\\f``."""
    text = inspect.cleandoc(cmd.help or "").split("\f")[0]
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _cell(text: str) -> str:
    """Text for a table cell: one line, with what markdown would read as markup or a column break escaped."""
    out = " ".join(text.split())
    for ch in "\\`*<|":
        out = out.replace(ch, "\\" + ch)
    return out


def _code(text: str) -> str:
    """A code span for a table cell (a ``|`` still ends the cell there unless escaped)."""
    return f"`{text.replace('|', chr(92) + '|')}`"


def _default(param: click.Option) -> str:
    value = param.to_info_dict()["default"]  # None where no default was given (click 8.3's UNSET too)
    if param.is_flag and param.secondary_opts:
        return _code((param.opts if value else param.secondary_opts)[0])
    if value is None or value is False or value == () or callable(value) or (param.count and value == 0):
        return ""
    return _code(str(value))


def _names(param: click.Option, ctx: click.Context) -> str:
    names = " / ".join(", ".join(opts) for opts in (param.opts, param.secondary_opts) if opts)
    if param.is_flag or param.count:
        return _code(names)
    return _code(f"{names} {param.make_metavar(ctx)}")


def options_table(cmd: click.Command, ctx: click.Context) -> list[str]:
    rows = ["| option | default | help |", "|---|---|---|"]
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden:
            rows.append(f"| {_names(param, ctx)} | {_default(param)} | {_cell(param.help or '')} |")
    return rows


def command_section(cmd: click.Command, ctx: click.Context, *, short: str = "") -> list[str]:
    usage = " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])
    lines = [f"## {ctx.command_path}", ""]
    if short:
        lines += [short, ""]
    lines += ["```text", f"Usage: {usage}", "", help_text(cmd), "```", ""]
    return lines + options_table(cmd, ctx) + [""]


def render() -> str:
    """The whole page: the ``edgekv`` group, then each verb in ``VERBS`` order."""
    root = click.Context(cli, info_name="edgekv", **cli.context_settings)  # -h as well as --help
    lines = [HEADER, *command_section(cli, root)]
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#edgekv-{name}) | {_cell(short)} |" for name, (_, short) in VERBS.items()]
    lines.append("")
    for name in VERBS:
        cmd = cli.get_command(root, name)
        assert cmd is not None, name
        ctx = click.Context(cmd, info_name=name, parent=root)
        lines += command_section(cmd, ctx, short=VERBS[name][1])
        if isinstance(cmd, click.Group):  # a verb with subcommands (catalog add/list/remove): one section each
            for sub_name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, sub_name)
                assert sub is not None, sub_name
                lines += command_section(sub, click.Context(sub, info_name=sub_name, parent=ctx))
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
