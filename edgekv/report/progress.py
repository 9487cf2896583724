"""Progress bars on stderr for a human on a TTY, each handed to the library as its ``progress=``
callback: eval's (accuracy so far and an ETA), download's (bytes) and convert's (one per file).
``common.step_bar`` is bench's. Every one is built by ``common.progress_bar``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekv.convert.tensors import ConvertProgress
    from edgekv.eval.run import EvalProgress


class EvalBar:
    """A rich progress bar with accuracy so far and an ETA, only for a human on a TTY."""

    def __init__(self, *, enabled: bool) -> None:
        import sys

        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Callable[[EvalProgress], None] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        from edgekv.report.common import progress_bar

        self.bar = progress_bar(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeRemainingColumn())  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task("", total=None)
        return self.update

    def update(self, p: EvalProgress) -> None:
        text = f"pass@1 {100 * p.pass_at_1:.1f}% maj@G {100 * p.maj_at_g:.1f}% {p.decode_tps:.1f} tok/s"
        self.bar.update(self.task, completed=p.done, total=p.total, description=text)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def download_bar(total_bytes: int, *, show: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A bar of the bytes fetched (``hub.download.fetch``'s progress); None when not shown or nothing to fetch."""
    if not show or not total_bytes:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn, TransferSpeedColumn

    from edgekv.report.common import progress_bar

    columns = (BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("download", total=total_bytes)
        yield lambda done, total: bar.update(task, completed=done)


@contextmanager
def convert_bars(*, show: bool) -> Iterator[Callable[[ConvertProgress], None] | None]:
    """A bar per file written (``convert_checkpoint``'s progress); None when not shown."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn

    from edgekv.report.common import progress_bar

    bars: dict[str, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with progress_bar(*columns, transient=False) as bar:

        def on_progress(p: ConvertProgress) -> None:
            if p.file_name not in bars:
                label = f"[{p.file_index + 1}/{p.n_files}] {p.stage} {p.file_name}"
                bars[p.file_name] = bar.add_task(label, total=p.total_bytes)
            bar.update(bars[p.file_name], completed=p.done_bytes, total=p.total_bytes)

        yield on_progress
