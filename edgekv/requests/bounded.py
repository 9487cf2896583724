"""The click types that bound every numeric flag while the flags are read, by the one table
``edgekv.plan.bounds.OPTIONS``. Import-light (click and plan only): pick's options use them too."""

from __future__ import annotations

import math
import os
from typing import Any

import click

from edgekv.plan.bounds import OPTIONS, THREADS, Bound


def _option_name(param: click.Parameter | None) -> str:
    return max(param.opts, key=len) if param is not None and param.opts else "value"


class BoundedInt(click.IntRange):
    """An int within a ``bounds.Bound``: below it click's range message; above it the bound's own
    refusal (a usage error naming the option, the range and where its top comes from)."""

    def __init__(self, bound: Bound, *, lo: int | None = None) -> None:
        super().__init__(int(bound.lo) if lo is None else lo, int(bound.hi))
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)
        if self.max is not None and number > self.max:
            raise self.bound.refusal(_option_name(param), number, cores=os.cpu_count())
        if self.bound is THREADS and self.min is not None and number < self.min:
            raise self.bound.refusal("--threads", number, cores=os.cpu_count())
        return super().convert(number, param, ctx)


class BoundedFloat(click.FloatRange):
    """A finite float within a ``bounds.Bound`` (nan passes any comparison, so it is refused by name)."""

    def __init__(
        self, bound: Bound, *, lo: float | None = None, hi: float | None = None, open_lo: bool = False
    ) -> None:
        super().__init__(bound.lo if lo is None else lo, bound.hi if hi is None else hi, min_open=open_lo)
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def bounded(option: str, *, lo: int | None = None) -> BoundedInt:
    """The click type of int option ``option`` from the bounds table (``lo``: a stricter floor)."""
    return BoundedInt(OPTIONS[option], lo=lo)


def bounded_float(option: str, *, lo: float | None = None, hi: float | None = None) -> BoundedFloat:
    return BoundedFloat(OPTIONS[option], lo=lo, hi=hi)
