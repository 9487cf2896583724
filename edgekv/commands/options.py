"""Context shared by the commands: the verbosity, whether a flag was given. The shared option
declarations and their types are in ``edgekv.requests.options``; the values are parsed in
``edgekv.requests``.
"""

from __future__ import annotations

import click
from click.core import ParameterSource


def verbosity(ctx: click.Context) -> int:
    obj = ctx.find_root().obj
    return int(obj.get("verbosity", 0)) if isinstance(obj, dict) else 0


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)


def exclusive(*pairs: tuple[str, str, str]) -> None:
    """Refuse two flags of the running command given together: each pair is (parameter, parameter,
    why they exclude each other). A usage error (exit 2) naming both, so neither is silently ignored.

    Raises:
        click.UsageError: the first pair whose two parameters were both given.
    """
    ctx = click.get_current_context()
    for a, b, why in pairs:
        if given(ctx, a) and given(ctx, b):
            raise click.UsageError(f"{_flag(ctx, a)} and {_flag(ctx, b)} cannot be used together: {why}", ctx=ctx)


def _flag(ctx: click.Context, name: str) -> str:
    """How the user wrote a parameter: the long option (--gguf), or an argument's metavar (REPO_ID)."""
    for p in ctx.command.params:
        if p.name == name:
            if isinstance(p, click.Option):
                return max(p.opts, key=len)
            return name.upper()
    return name
