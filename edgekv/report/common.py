"""Shared pieces of edgekv's output: units, the memory bar, the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
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
