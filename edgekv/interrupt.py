"""Ctrl-C inside llama.cpp's callbacks: deferred until the callback returns, never lost.

Python runs a SIGINT handler at the next bytecode of the main thread. When the main thread is inside a
llama.cpp call, that bytecode is often in a Python callback llama.cpp calls (its log callback, while a
model loads or a context is made), and an exception raised there cannot cross the C frames: ctypes
prints "Exception ignored on calling ctypes callback function ... KeyboardInterrupt" and drops it, so
the command went on as if nothing happened. :func:`install` sets a SIGINT handler that, while any
function marked :func:`native_callback` is on the stack, raises nothing and has the interrupt sent
again 5 ms later from a timer thread (``_thread.interrupt_main``), until it arrives outside a
callback: once the llama.cpp call has returned (its own next step, at most; a long call such as
quantizing runs in a worker thread, see ``llama.quantize``). Outside callbacks it is Python's
KeyboardInterrupt as ever. Stdlib only: ``cli.main`` installs it for every verb.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CALLBACK_CODES: set[CodeType] = set()


def native_callback(fn: F) -> F:
    """Mark ``fn`` as run by native code through ctypes: a Ctrl-C inside it is deferred, not raised."""
    _CALLBACK_CODES.add(fn.__code__)
    return fn


def in_native_callback(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame below it runs a :func:`native_callback`."""
    while frame is not None:
        if frame.f_code in _CALLBACK_CODES:
            return True
        frame = frame.f_back
    return False


RETRY_S = 0.005  # how soon a deferred Ctrl-C is sent again
_retry: list[threading.Timer] = []


def _again(signum: int) -> None:
    _retry.clear()
    _thread.interrupt_main(signal.Signals(signum))


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if in_native_callback(frame):
        if not _retry:  # sent again from another thread, so not handled again inside this callback
            timer = threading.Timer(RETRY_S, _again, args=(signum,))
            timer.daemon = True
            _retry.append(timer)
            timer.start()
        return
    raise KeyboardInterrupt


def raise_pending() -> None:
    """Raise a Ctrl-C that was deferred and not yet sent again (the command ended within ``RETRY_S``).

    Raises:
        KeyboardInterrupt: one is pending.
    """
    if _retry:
        for timer in _retry:
            timer.cancel()
        _retry.clear()
        raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Set the deferring SIGINT handler (main thread only, and only over Python's default one);
    returns what restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # a caller's own handler (or SIG_IGN) stays
        return lambda: None
    signal.signal(signal.SIGINT, _on_sigint)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore
