"""A thread-safe feed of requests into a running :class:`edgekv.llama.batch.Engine` (a server's).

Other threads :meth:`~Feed.put` requests, :meth:`~Feed.cancel` them (a client went away: its slots
are freed before the engine's next step) and :meth:`~Feed.close` the feed (no more requests; with
``cut`` the engine also ends every running sample at once, finish ``"shutdown"``). The engine thread
alone takes from it: :meth:`~Feed.take` waits only when the engine has nothing to decode.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable

from edgekv.llama.generation import Request

IDLE_WAIT_S = 0.25  # how long an idle engine waits for a request before it looks at the flags again


class Feed:
    """Requests waiting for the engine, the keys to cancel, and whether the feed is closed (or cut)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: deque[Request] = deque()
        self._cancelled: set[Hashable] = set()
        self._closed = False
        self._cut = False

    def put(self, request: Request) -> None:
        """Queue a request; refused (RuntimeError) once the feed is closed."""
        with self._cv:
            if self._closed:
                raise RuntimeError("the feed is closed")
            self._queue.append(request)
            self._cv.notify()

    def cancel(self, key: Hashable) -> None:
        """Drop a request: from the queue if it has not reached the engine, else at the next step."""
        with self._cv:
            before = len(self._queue)
            self._queue = deque(r for r in self._queue if r.key != key)
            if len(self._queue) == before:
                self._cancelled.add(key)
            self._cv.notify()

    def close(self, *, cut: bool = False) -> None:
        """No more requests; ``cut``: end the running and queued ones now (finish ``"shutdown"``)."""
        with self._cv:
            self._closed = True
            self._cut = self._cut or cut
            self._cv.notify()

    @property
    def queued(self) -> int:
        """Requests not yet taken by the engine."""
        return len(self._queue)

    @property
    def cut(self) -> bool:
        return self._cut

    def take(self, *, wait: bool) -> Request | None:
        """The next request, or None: nothing queued now (after up to IDLE_WAIT_S when ``wait``)."""
        with self._cv:
            if not self._queue and wait and not self._closed and not self._cancelled:
                self._cv.wait(IDLE_WAIT_S)
            return self._queue.popleft() if self._queue else None

    def drained(self) -> bool:
        """Closed with nothing queued: the engine may stop once its slots are empty."""
        with self._cv:
            return self._closed and not self._queue

    def take_cancelled(self) -> set[Hashable]:
        """The keys cancelled since the last call (the engine drops them)."""
        with self._cv:
            keys, self._cancelled = self._cancelled, set()
            return keys

    def take_all(self) -> list[Request]:
        """Every queued request, removed (a cut feed's, ended unstarted)."""
        with self._cv:
            out = list(self._queue)
            self._queue.clear()
            return out
