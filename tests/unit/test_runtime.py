"""Runtime helpers: counters, meters, the stats line, logging format and stop signals."""

from __future__ import annotations

import ast
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.metrics import LatencyHistogram, ServiceMetrics, bucket_quantile
from shared.runtime import (
    PeriodicLogger,
    RateMeter,
    StartupInterrupted,
    Stats,
    format_stats_line,
    install_stop_handlers,
    interruptible_startup,
    setup_logging,
)

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ([], 0.5, None),
        ([(0.01, 0.0), (float("inf"), 0.0)], 0.5, None),
        ([(0.01, 10.0), (0.02, 10.0), (float("inf"), 10.0)], 0.5, 0.005),
        ([(0.01, 0.0), (0.02, 10.0), (float("inf"), 10.0)], 0.5, 0.015),
        ([(0.01, 5.0), (0.02, 10.0), (float("inf"), 10.0)], 0.95, 0.019),
        ([(0.01, 0.0), (0.02, 0.0), (float("inf"), 4.0)], 0.5, 0.02),
    ],
)
def test_bucket_quantile_interpolates_as_promql(
    buckets: list[tuple[float, float]], q: float, expected: float | None
) -> None:
    result = bucket_quantile(buckets, q)
    assert result == (None if expected is None else pytest.approx(expected))


def test_latency_histogram_quantiles_are_those_of_its_buckets_over_the_window() -> None:
    clock = FakeClock()
    metrics = ServiceMetrics("t")
    latency = LatencyHistogram(metrics.histogram("x", "x"), window_s=10.0, clock=clock)
    assert latency.quantile_ms(0.5) is None
    for _ in range(10):
        latency.observe_ms(1.5)  # the 1-2 ms bucket
    latency.observe_ms(float("nan"))  # not a latency: not counted
    assert latency.quantile_ms(0.5) == pytest.approx(1.5)
    text = metrics.exposition().decode()
    assert 'emojify_t_x_seconds_bucket{le="0.002"} 10.0' in text  # the same buckets
    assert "emojify_t_x_seconds_count 10.0" in text
    clock.now += 20.0  # a read now, as a stats line makes every few seconds
    latency.quantile_ms(0.5)
    clock.now += 5.0  # the 1.5 ms ones are older than the window's oldest read
    for _ in range(10):
        latency.observe_ms(40.0)  # the 35-50 ms bucket
    assert 35.0 <= (latency.quantile_ms(0.5) or 0.0) <= 50.0


def test_stats_counters_from_threads() -> None:
    stats = Stats()

    def count() -> None:
        for _ in range(1000):
            stats.increment("frames")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.increment("drops", 3)
    assert stats.get("frames") == 4000
    assert stats.get("missing") == 0
    snapshot = stats.snapshot()
    assert snapshot == {"frames": 4000, "drops": 3}
    snapshot["frames"] = 0
    assert stats.get("frames") == 4000


def test_rate_meter() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=2.0, clock=clock)
    assert meter.rate() == 0.0
    clock.now += 1.0
    meter.mark(10)
    assert meter.rate() == pytest.approx(10.0)
    clock.now += 1.0
    meter.mark(10)
    assert meter.rate() == pytest.approx(10.0)
    clock.now += 1.5
    assert meter.rate() == pytest.approx(5.0)
    clock.now += 10.0
    assert meter.rate() == 0.0


def test_periodic_logger() -> None:
    clock = FakeClock()
    periodic = PeriodicLogger(10.0, clock=clock)
    assert not periodic.due()
    clock.now += 9.9
    assert not periodic.due()
    clock.now += 0.1
    assert periodic.due()
    assert not periodic.due()
    clock.now += 10.0
    assert periodic.due()


def test_format_stats_line() -> None:
    line = format_stats_line(
        {
            "p95_ms": 20.04,
            "extra": 1,
            "fps_in": 12.345,
            "fps_out": 12.0,
            "drops": 3,
            "malformed": 0,
            "p50_ms": None,
        }
    )
    assert line == "fps_in=12.3 fps_out=12.0 drops=3 malformed=0 p50_ms=- p95_ms=20.0 extra=1"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_logging_names_service_and_pid(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("capture", "debug")
    logging.getLogger("services.capture").debug("hello %s", "there")
    err = capsys.readouterr().err
    assert f" DEBUG capture[{os.getpid()}] services.capture: hello there" in err


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_handler_sets_event(restore_signals: None, sig: signal.Signals) -> None:
    stop = threading.Event()
    install_stop_handlers(stop)
    os.kill(os.getpid(), sig)
    assert stop.wait(timeout=2.0)


def test_stop_handlers_need_main_thread(restore_signals: None) -> None:
    errors: list[BaseException] = []

    def install() -> None:
        try:
            install_stop_handlers(threading.Event())
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert len(errors) == 1


def test_stop_signal_interrupts_startup_work_and_restores_handlers() -> None:
    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StartupInterrupted, match="SIGTERM"), interruptible_startup(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # slow start-up work, interrupted between bytecodes
            sum(range(1000))
        pytest.fail("start-up work was not interrupted")
    assert stop.wait(2)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interruption_wrapped_by_a_failing_import_still_reads_as_interrupted() -> None:
    # TensorFlow's C extensions turn an exception raised during their initialisation into
    # ImportError("initialization failed"), with ours as its cause.
    stop = threading.Event()
    with pytest.raises(StartupInterrupted, match="SIGTERM"), interruptible_startup(stop):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                sum(range(1000))
            pytest.fail("start-up work was not interrupted")
        except StartupInterrupted as interrupted:
            raise ImportError("initialization failed") from interrupted
    assert stop.wait(2)


def test_other_start_up_errors_pass_through_unchanged() -> None:
    with pytest.raises(ImportError, match="no module"), interruptible_startup(threading.Event()):
        raise ImportError("no module named nothing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_a_service_starts_is_a_clean_exit(sig: signal.Signals) -> None:
    """What each service's ``__main__`` installs first: a stop during its imports exits 0."""
    program = (
        "import sys, time\n"
        "from shared.early_exit import exit_on_stop_signal\n"
        "exit_on_stop_signal()\n"
        "print('importing', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        "while time.monotonic() < deadline:\n"
        "    sum(range(1000))  # stands for a slow import\n"
        "sys.exit(3)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "importing\n"
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=10)
    assert child.returncode == 0
    assert f"{sig.name} while starting: stopping" in stderr


def test_every_service_installs_the_early_exit_before_importing_its_main() -> None:
    for entry in sorted((REPO / "services").glob("*/__main__.py")):
        body = [node for node in ast.parse(entry.read_text()).body if not _is_docstring(node)]
        calls = [i for i, n in enumerate(body) if "exit_on_stop_signal()" in ast.unparse(n)]
        imports_main = [
            i for i, n in enumerate(body) if isinstance(n, ast.ImportFrom) and n.module == "main"
        ]
        assert calls and imports_main and calls[0] < imports_main[0], entry


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
