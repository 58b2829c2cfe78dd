"""SIGINT and SIGTERM stop a long job where it is, except while it writes what it finished."""

from __future__ import annotations

import os
import signal

import pytest

from training.stop_signals import StopOnSignal, Stopped


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_work_where_it_is(signum: int) -> None:
    before = signal.getsignal(signum)
    reached = []
    with StopOnSignal() as stop, pytest.raises(Stopped) as stopped:
        os.kill(os.getpid(), signum)
        reached.append("after the signal")
    assert reached == [] and stopped.value.signum == signum and stop.signum == signum
    assert signal.getsignal(signum) is before, "the handler is put back after the block"


def test_a_signal_waits_for_the_writes_then_stops() -> None:
    written = []
    with StopOnSignal() as stop, pytest.raises(Stopped) as stopped:
        with stop.writing():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("last.keras")
            written.append("history.csv")
        written.append("never: the next epoch")
    assert written == ["last.keras", "history.csv"]
    assert stopped.value.signum == signal.SIGTERM


def test_writes_without_a_signal_go_on_and_an_earlier_signal_is_not_taken_twice() -> None:
    with StopOnSignal() as stop:
        with pytest.raises(Stopped):
            os.kill(os.getpid(), signal.SIGINT)
        with stop.writing():  # carrying the state after the stop: no second Stopped
            pass
        assert stop.signum == signal.SIGINT


def test_a_held_signal_stops_at_the_next_check_or_at_the_end() -> None:
    steps = []
    with StopOnSignal() as stop, pytest.raises(Stopped) as stopped, stop.held():
        stop.check()  # nothing came yet
        steps.append("batch 1")
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("the batch under way ends")
        stop.check()
        steps.append("never: batch 2")
    assert steps == ["batch 1", "the batch under way ends"]
    assert stopped.value.signum == signal.SIGTERM
    with StopOnSignal() as stop, pytest.raises(Stopped), stop.held():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("no check in the block")
    assert steps[-1] == "no check in the block"
