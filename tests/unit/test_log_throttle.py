"""LogThrottle: the first event speaks, then one per interval with the count it kept quiet."""

from __future__ import annotations

import pytest

from shared.log_throttle import LogThrottle, and_more


def test_first_then_one_per_interval_with_suppressed_count() -> None:
    now = [0.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.ready() == 0
    assert [throttle.ready() for _ in range(3)] == [None, None, None]
    now[0] = 4.9
    assert throttle.ready() is None
    now[0] = 5.0
    assert throttle.ready() == 4
    assert throttle.ready() is None


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        LogThrottle(0)


def test_and_more_says_how_many_were_kept_quiet() -> None:
    assert and_more(0) == ""
    assert and_more(41) == " (and 41 more since the last warning)"
