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
