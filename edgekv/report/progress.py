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
    """eval's progress on stderr: a rich bar with accuracy so far and an ETA on a terminal; elsewhere
    (a log file, a pipe, CI) a plain line at each tenth of the problems and at least every
    ``every_s`` seconds, so a long run is never silent."""

    def __init__(self, *, enabled: bool, every_s: float = 60.0) -> None:
        import sys

        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every_s = every_s
        self.bar: Any = None
        self.task: Any = None
        self._tenth = 0
        self._last = 0.0

    def __enter__(self) -> Callable[[EvalProgress], None] | None:
        if not self.enabled:
            return None
        if not self.tty:
            import time

            self._last = time.monotonic()
            return self.line
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        from edgekv.report.common import progress_bar

        self.bar = progress_bar(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeRemainingColumn())  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task("", total=None)
        return self.update

    def line(self, p: EvalProgress) -> None:
        """A plain line when the run passed another tenth of its problems, or ``every_s`` went by."""
        import sys
        import time

        tenth = 10 * p.done // max(p.total, 1)
        now = time.monotonic()
        if tenth <= self._tenth and now - self._last < self.every_s and p.done < p.total:
            return
        self._tenth, self._last = tenth, now
        eta = f", ETA {_duration(p.eta_seconds)}" if p.eta_seconds is not None and p.done < p.total else ""
        sys.stderr.write(f"eval: {p.done}/{p.total} problems, pass@1 {100 * p.pass_at_1:.1f}%, maj@G "
                         f"{100 * p.maj_at_g:.1f}%, {p.decode_tps:.1f} tok/s{eta}\n")  # fmt: skip
        sys.stderr.flush()

    def update(self, p: EvalProgress) -> None:
        text = f"pass@1 {100 * p.pass_at_1:.1f}% maj@G {100 * p.maj_at_g:.1f}% {p.decode_tps:.1f} tok/s"
        self.bar.update(self.task, completed=p.done, total=p.total, description=text)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


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
