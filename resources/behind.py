"""Work run on a thread of its own, behind the caller, in the order it was handed over.

A step's Arrow and numpy work lets go of the GIL, so what it hands to such a thread (counting a
profile, compressing and writing a staged part) runs on the other core while the step computes
its next batch. The caller waits only when `ahead` calls are already waiting, which bounds what
they hold (each call holds its batch until it has run).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class Behind:
    """One thread running the calls handed to `submit` in order. The first error of a call
    is raised by a later `submit` or by `drain`; `close` drops what has not started and waits
    for what has."""

    def __init__(self, name: str, ahead: int):
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future] = deque()
        self._ahead = ahead

    def submit(self, work: Callable, *args) -> None:
        self._pending.append(self._worker.submit(work, *args))
        while len(self._pending) > self._ahead or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()

    def drain(self) -> None:
        """Wait for every call handed over (raising the first error of one)."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._worker.shutdown(wait=True)
