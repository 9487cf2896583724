"""Shared pieces of edgekv's output: units, the memory bar, the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgekv.plan.memory import Footprint
from edgekv.units import GIB, format_bytes

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

BAR_WIDTH = 36
_SEGMENTS = (
    ("weights", "bold blue", "█"),
    ("kv", "bold green", "▓"),
    ("compute", "yellow", "▒"),
    ("overhead", "magenta", "░"),
    ("margin", "red", "-"),
)


def gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f}"


def memory_bar(fp: Footprint, vram_bytes: int, *, width: int = BAR_WIDTH) -> Text:
    """A one-line bar: weights / KV / compute / overhead / margin / free, to scale of the card."""
    parts = {
        "weights": fp.weights_gpu, "kv": fp.kv_gpu, "compute": fp.compute,
        "overhead": fp.overhead, "margin": fp.margin,
    }  # fmt: skip
    text = Text()
    used = 0
    for key, style, ch in _SEGMENTS:
        n = round(parts[key] / vram_bytes * width) if vram_bytes else 0
        n = min(n, width - used)
        text.append(ch * n, style=style)
        used += n
    text.append("·" * (width - used), style="dim")
    return text


def bar_legend() -> Text:
    t = Text("bar: ")
    for key, style, ch in _SEGMENTS:
        t.append(f"{ch} {key}  ", style=style)
    t.append("· free", style="dim")
    return t


def footprint_line(fp: Footprint) -> str:
    return (
        f"weights {format_bytes(fp.weights_gpu)} + KV {format_bytes(fp.kv)} + compute {format_bytes(fp.compute)} "
        f"({fp.compute_source}) + "
        + (f"copy of RAM experts {format_bytes(fp.expert_copy)} (estimate) + " if fp.expert_copy else "")
        + f"CUDA overhead {format_bytes(fp.overhead)} + margin {format_bytes(fp.margin)} = {format_bytes(fp.gpu_total)}"
    )


def console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False, emoji=False)  # text is data: no :name: emoji


def fmt_const(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("bytes"):
        return format_bytes(value)
    if name.endswith("tokens"):
        return f"{int(value)} tokens"
    return str(value)


def progress_bar(*columns: ProgressColumn, transient: bool = True) -> Progress:
    """The rich progress bar every command shows: ``columns`` on stderr, cleared when done unless not
    ``transient``. The caller shows it only to a human on a TTY (not with --json)."""
    from rich.progress import Progress

    return Progress(*columns, console=console(stderr=True), transient=transient)


@contextmanager
def step_bar(label: str, total: int, *, show: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A transient progress bar on stderr; yields its update (done, total, label), or None if not shown."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    with progress_bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(label, total=total)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update


def natural_width(renderable: Any) -> int:
    """The columns ``renderable`` takes when nothing is wrapped or cut."""
    from rich.measure import Measurement

    m = Console(width=1000, emoji=False)
    return Measurement.get(m, m.options, renderable).maximum


def fitted_table(
    build: Callable[[frozenset[str]], Table], *, optional: Sequence[str], width: int | None
) -> Table:  # fmt: skip
    """``build(dropped)`` with as few of ``optional`` (least important first) dropped as lets it fit
    ``width`` columns unwrapped. The key columns are never dropped; what still does not fit folds onto
    more lines (every column ``overflow="fold"``: a value is never cut to "…"). ``width`` None: all kept."""
    dropped: frozenset[str] = frozenset()
    table = build(dropped)
    if width is None:
        return table
    for col in optional:
        if natural_width(table) <= width:
            break
        dropped |= {col}
        table = build(dropped)
    return table


def column_kw() -> dict[str, Any]:
    """The column settings of a fitted table: a value that does not fit folds, never "…"."""
    return {"overflow": "fold"}


def command_lines(argv: Sequence[str], *, width: int, indent: str = "  ") -> list[Text]:
    """A shell command as lines a user can paste: the words (quoted as the shell reads them) packed into
    lines of at most ``width`` columns, each but the last ending in `` \\`` and the next indented.
    A word is never split: one longer than the width stands on its own line, whole, and the lines
    are no_wrap (print them with ``crop=False``)."""
    import shlex

    words = [shlex.quote(w) for w in argv]
    lines: list[str] = []
    line = indent
    for w in words:
        head = line if line.strip() else ""
        candidate = f"{line} {w}" if head else f"{line}{w}"
        if head and len(candidate) + 2 > width:  # room for " \"
            lines.append(line + " \\")
            line = indent + "    " + w
        else:
            line = candidate
    lines.append(line)
    return [Text(ln, no_wrap=True, overflow="ignore") for ln in lines]
