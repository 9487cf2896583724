"""The command line's logging set-up, made when something first logs.

``edgekv -v/-q`` set the level; the handler (``LEVEL name: message`` on stderr) is installed when the
first edgekv logger is made (:func:`get_logger`), or at once when :mod:`logging` is already loaded.
A command that never logs (plain ``edgekv pick``) so never imports :mod:`logging`, about 9 ms of
its start-up. Library use (no CLI) configures nothing, as a library should.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"
_pending: list[int] = []  # the level the CLI asked for, until it is applied


def configure(verbosity: int) -> None:
    """The CLI's verbosity (-1 quiet: errors only, 0 warnings, 1 info, 2+ debug) as the root level."""
    _pending[:] = [40 if verbosity < 0 else 30 if verbosity == 0 else 20 if verbosity == 1 else 10]
    if verbosity != 0 or "logging" in sys.modules:
        _apply()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, after applying the CLI's pending set-up."""
    import logging

    _apply()
    return logging.getLogger(name)


def _apply() -> None:
    if _pending:
        import logging

        logging.basicConfig(level=_pending.pop(), format=FORMAT)
