"""Process plumbing every service shares: logging, stop signals, counters and latency meters."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Final

__all__ = [
    "LOG_FORMAT",
    "PeriodicLogger",
    "RateMeter",
    "Stats",
    "format_stats_line",
    "install_stop_handlers",
    "setup_logging",
]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s {service}[%(process)d] %(name)s: %(message)s"

Clock = Callable[[], float]


def setup_logging(service: str, level: str) -> None:
    """Send all logging to stderr in the one format that names the service and pid."""
    # supervisord merges streams, so every line must say who spoke; '%' would break the format.
    fmt = LOG_FORMAT.format(service=service.replace("%", "%%"))
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    logging.captureWarnings(True)


def install_stop_handlers(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT set ``stop``; call from the main thread before starting loops."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_stop_handlers must be called from the main thread")
    log = logging.getLogger(__name__)

    def handle(signum: int, _frame: FrameType | None) -> None:
        # The handler runs on the main thread between bytecodes, possibly while that thread
        # holds the Event's internal lock inside stop.wait(); setting it from a helper thread
        # cannot deadlock.
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()
        log.info("received %s, stopping", signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class StartupInterrupted(BaseException):
    """A stop signal arrived during start-up (a BaseException, so library code that catches
    ``Exception`` around its imports cannot swallow it)."""


@contextmanager
def interruptible_startup(stop: threading.Event) -> Iterator[None]:
    """While slow start-up work runs (TensorFlow import, model load), a stop signal aborts it.

    The main thread is not in a polling loop yet, so setting ``stop`` alone would only be seen
    seconds later; instead the handler raises ``StartupInterrupted`` on the main thread.
    Afterwards the handlers installed before are restored.
    """
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def handle(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()
        raise StartupInterrupted(signal.Signals(signum).name)

    for signum in signals:
        signal.signal(signum, handle)
    try:
        yield
    except Exception as error:
        # A C extension whose initialisation the signal interrupted (TensorFlow's import)
        # reports it as its own error, e.g. ImportError("initialization failed"), caused by ours.
        interrupted = _interruption_behind(error)
        if interrupted is None:
            raise
        raise interrupted from error
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interruption_behind(error: BaseException) -> StartupInterrupted | None:
    """The ``StartupInterrupted`` somewhere in ``error``'s chain of causes, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, StartupInterrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class Stats:
    """Named counters, safe to increment from several threads (e.g. the loop and /metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def increment(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s: expected > 0, found {window_s}")
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._events: deque[tuple[float, int]] = deque()
        self._started = clock()

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self._window_s:
            self._events.popleft()

    def mark(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._events.append((now, n))
            self._expire(now)

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            self._expire(now)
            total = sum(n for _, n in self._events)
        # Right after start the window is not full yet; dividing by it would under-report.
        span = min(self._window_s, now - self._started)
        return total / span if span > 0 else 0.0


class PeriodicLogger:
    """Says when ``interval_s`` has passed since it last said so (or since it was made)."""

    def __init__(self, interval_s: float, clock: Clock = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s: expected > 0, found {interval_s}")
        self._interval_s = interval_s
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        now = self._clock()
        if now - self._last >= self._interval_s:
            self._last = now
            return True
        return False


_STATS_ORDER: Final = ("fps_in", "fps_out", "drops", "malformed", "p50_ms", "p95_ms")


def _format_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_stats_line(stats: Mapping[str, object]) -> str:
    """``fps_in=.. fps_out=.. drops=.. malformed=.. p50_ms=.. p95_ms=..`` then any other keys."""
    keys = [key for key in _STATS_ORDER if key in stats]
    keys += [key for key in stats if key not in _STATS_ORDER]
    return " ".join(f"{key}={_format_value(stats[key])}" for key in keys)
