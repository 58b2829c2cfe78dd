"""A long job stopped by SIGINT or SIGTERM without losing what it finished.

Inside ``StopOnSignal`` either signal raises ``Stopped`` where the job is, so the work under way
(an epoch) is abandoned at once; but while the job writes what it finished (``writing()``), the
signal waits until the writes are done, so files on disk always describe whole units of work.
While a native library works for the job (``held()``: TensorFlow's ``fit``, with threads of its
own), an exception raised at whatever bytecode the signal interrupts can leave that library's
state half torn down: a campaign stopped so once aborted with ``malloc_consolidate(): invalid
chunk size``. There the signal waits for ``check()``, called where stopping is safe (the end of
a batch), or for the block's end.
"""

from __future__ import annotations

import contextlib
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
        self._holding = False
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
        if self._holding:
            self._held = signum
        else:
            raise Stopped(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold a signal that comes during the block back until ``check()`` or the block's
        end, then stop."""
        self._holding, self._held = True, None
        try:
            yield
        finally:
            self._holding = False
        self.check()

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold a signal that comes during the block back until its writes are done, then
        stop."""
        return self.held()

    def check(self) -> None:
        """Stop here if a signal came during ``held()``."""
        held, self._held = self._held, None
        if held is not None:
            raise Stopped(held)
