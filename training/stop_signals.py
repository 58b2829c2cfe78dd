"""A long job stopped by SIGINT or SIGTERM without losing what it finished.

Inside ``StopOnSignal`` either signal raises ``Stopped`` where the job is, so the work under way
(an epoch) is abandoned at once; but while the job writes what it finished (``writing()``), the
signal waits until the writes are done, so files on disk always describe whole units of work.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopOnSignal", "Stopped"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """A stop asked for by a signal (a BaseException, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class StopOnSignal:
    """Turns SIGINT and SIGTERM into ``Stopped`` for the time of a ``with`` block (main
    thread only), deferred while ``writing()``."""

    def __init__(self) -> None:
        #: The last signal taken (None: none).
        self.signum: int | None = None
        self._writing = False
        self._held: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self._writing:
            self._held = signum
        else:
            raise Stopped(signum)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold a signal that comes during the block back until its writes are done, then
        stop."""
        self._writing, self._held = True, None
        try:
            yield
        finally:
            self._writing = False
        if self._held is not None:
            raise Stopped(self._held)
