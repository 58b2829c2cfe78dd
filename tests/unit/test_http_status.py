"""The shared /metrics and /healthz: Prometheus text format, health codes, a real server."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from shared.http_status import (
    Health,
    LoopWatch,
    Metric,
    StatusError,
    StatusServer,
    counters,
    gauges,
    metric_name,
    render_health,
    render_metrics,
    start_status_server,
)

# One sample line of the text exposition format: name, one space, a float.
SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]* (-?[0-9.e+-]+|NaN|[+-]Inf)$")


class FakeSource:
    def __init__(self) -> None:
        self.ok = True

    def metrics(self) -> list[Metric]:
        return counters({"frames_sent": 12, "drops": 0}, {"drops": "Frames dropped."}) + gauges(
            {"fps_in": 14.5, "p50_ms": None, "offline": True}, {}
        )

    def health(self) -> Health:
        return Health(self.ok, {"workers": 2})


def test_metrics_text_has_help_type_and_one_sample_each() -> None:
    text = render_metrics("capture", FakeSource().metrics()).decode()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[:3] == [
        "# HELP emojify_capture_drops Frames dropped.",
        "# TYPE emojify_capture_drops counter",
        "emojify_capture_drops 0",
    ]
    assert "# TYPE emojify_capture_frames_sent counter" in lines
    assert "emojify_capture_frames_sent 12" in lines
    assert "# TYPE emojify_capture_fps_in gauge" in lines
    assert "emojify_capture_fps_in 14.5" in lines
    assert "emojify_capture_offline 1" in lines
    assert not any("p50_ms" in line for line in lines), "a value not measured yet is left out"
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line)


@pytest.mark.parametrize(
    ("service", "name", "expected"),
    [
        ("capture", "frames_sent", "emojify_capture_frames_sent"),
        ("display", "late-results", "emojify_display_late_results"),
        ("inference", "p50.ms", "emojify_inference_p50_ms"),
    ],
)
def test_metric_names(service: str, name: str, expected: str) -> None:
    assert metric_name(service, name) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(3.0, "3"), (0.25, "0.25"), (float("nan"), "NaN"), (float("inf"), "+Inf")],
)
def test_metric_values(value: float, text: str) -> None:
    body = render_metrics("x", [Metric("v", value, "gauge", "help\nwith newline")]).decode()
    assert body.splitlines()[0] == "# HELP emojify_x_v help\\nwith newline"
    assert body.splitlines()[2] == f"emojify_x_v {text}"


def test_a_repeated_name_is_written_once() -> None:
    metrics = [Metric("a", 1, "counter", "a"), Metric("a", 2, "gauge", "a")]
    assert render_metrics("x", metrics).decode().splitlines()[2:] == ["emojify_x_a 1"]


@pytest.mark.parametrize(("ok", "code", "status"), [(True, 200, "ok"), (False, 503, "unhealthy")])
def test_health(ok: bool, code: int, status: str) -> None:
    http_status, body = render_health("capture", Health(ok, {"workers": 2}))
    assert int(http_status) == code
    assert json.loads(body) == {"status": status, "service": "capture", "workers": 2}


def test_loop_watch_turns_unhealthy_when_the_loop_stops() -> None:
    now = [0.0]
    watch = LoopWatch(5.0, lambda: now[0])
    now[0] = 4.0
    assert watch.health().ok
    now[0] = 6.0
    health = watch.health(extra=1)
    assert not health.ok and health.details == {"loop_age_s": 6.0, "extra": 1}
    watch.turned()
    assert watch.health().ok


@pytest.fixture
def served() -> Iterator[tuple[StatusServer, FakeSource]]:
    source = FakeSource()
    with StatusServer("capture", "127.0.0.1", 0, source) as server:
        yield server, source


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_server_serves_metrics_and_health(served: tuple[StatusServer, FakeSource]) -> None:
    server, source = served
    code, kind, body = _get(server.url + "metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    assert b"emojify_capture_frames_sent 12" in body
    code, kind, body = _get(server.url + "healthz")
    assert (code, kind, json.loads(body)["status"]) == (200, "application/json", "ok")
    source.ok = False
    code, _, body = _get(server.url + "healthz")
    assert (code, json.loads(body)["status"]) == (503, "unhealthy")
    assert _get(server.url + "nothing")[0] == 404


def test_port_zero_is_off_and_a_taken_port_is_an_error(
    served: tuple[StatusServer, FakeSource],
) -> None:
    server, source = served
    assert start_status_server("capture", "127.0.0.1", 0, source) is None
    with pytest.raises(StatusError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        start_status_server("capture", "127.0.0.1", server.port, source)
