"""Rate-limited warnings: the first event is logged, then at most one per interval with a count."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["LogThrottle", "and_more"]


class LogThrottle:
    """Decides whether a repeated event should be logged now.

    ``ready()`` returns None while the event should stay quiet, otherwise the number of
    events suppressed since the last logged one, so a line can say "(and 41 more)". A flood of
    malformed messages then costs one log line per interval instead of one per message.
    """

    def __init__(self, interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not interval_s > 0:
            raise ValueError(f"interval_s: expected > 0, found {interval_s}")
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._suppressed = 0

    def ready(self) -> int | None:
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._interval_s:
                self._suppressed += 1
                return None
            self._last = now
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed


def and_more(suppressed: int) -> str:
    """The end of a throttled warning: " (and N more since the last warning)", or nothing."""
    return f" (and {suppressed} more since the last warning)" if suppressed else ""
