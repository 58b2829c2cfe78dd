"""Waiting on observable events in tests: one poller, so no test sleeps to order its steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["POLL_S", "wait_for"]

#: How often a condition is checked; the only sleep that orders steps in the tests.
POLL_S: Final = 0.05


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]
) -> None:
    """Poll ``condition`` until it holds; on timeout fail naming ``what``.

    Pass ``what`` as a callable when it quotes logs, so the message shows them as they were at
    the timeout rather than before the wait.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_S)  # the one poll interval of every wait
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout_s} s waiting for {described}")
