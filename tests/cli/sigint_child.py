"""A Ctrl-C at a chosen point of a command: ``python tests/cli/sigint_child.py MODULE:QUALNAME N ARGV...``
runs ``edgekv ARGV`` (through ``edgekv.cli.main``, as the console script does) and sends SIGINT to
itself at the N-th call of MODULE.QUALNAME (before the call), as a user's Ctrl-C would arrive there.
The function still runs; only the signal's moment is chosen. Prints nothing of its own."""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from typing import Any


def main() -> None:
    where, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    module_name, qualname = where.split(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    @functools.wraps(original)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    setattr(owner, name, hooked)
    from edgekv.cli import main as edgekv_main

    edgekv_main(argv)


if __name__ == "__main__":
    main()
