"""The shared /metrics and /healthz: prometheus_client exposition, health codes, a real server
and its limits (idle connections, the connection cap, oversized requests)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from bench.loopback import histogram_quantile, parse_metrics
from shared.http_server import HttpLimits, HttpServer, Request, Response, Route, reply
from shared.http_status import (
    Health,
    LoopWatch,
    StatusError,
    render_health,
    start_status_server,
    status_routes,
)
from shared.metrics import Sample, ServiceMetrics, counters, gauges, metric_name
from tests.waiting import wait_for


class FakeSource:
    def __init__(self) -> None:
        self.ok = True

    def metrics(self) -> list[Sample]:
        return counters({"frames_sent": 12, "replaced": 0}, {"replaced": "Frames replaced."}) + (
            gauges({"fps_in": 14.5, "p50_ms": None, "offline": True}, {})
        )

    def health(self) -> Health:
        return Health(self.ok, {"workers": 2})


def _registry(source: FakeSource) -> ServiceMetrics:
    registry = ServiceMetrics("capture")
    registry.read_from(source)
    return registry


def test_counters_end_in_total_gauges_do_not_and_unmeasured_values_are_left_out() -> None:
    text = _registry(FakeSource()).exposition().decode()
    assert "# HELP emojify_capture_replaced_total Frames replaced." in text
    assert "# TYPE emojify_capture_replaced_total counter" in text
    assert "# TYPE emojify_capture_fps_in gauge" in text
    values = parse_metrics(text)
    assert values["frames_sent_total"] == 12 and values["replaced_total"] == 0
    assert values["fps_in"] == 14.5 and values["offline"] == 1
    assert "p50_ms" not in values, "a value not measured yet is left out"
    assert not any(name.endswith("_created") for name in values)


def test_histograms_have_buckets_from_1_to_500_ms_and_give_quantiles() -> None:
    registry = ServiceMetrics("worker")
    stage = registry.histogram("stage", "Time per stage.", ["stage"])
    end_to_end = registry.histogram("end_to_end", "Capture to drawn.")
    for ms in (3, 4, 30, 40, 45):
        stage.labels(stage="detect").observe(ms / 1000)
        end_to_end.observe(ms / 1000)
    values = parse_metrics(registry.exposition().decode())
    bounds = {
        key.split('le="')[1].rstrip('"}')
        for key in values
        if key.startswith("end_to_end_seconds_bucket")
    }
    assert {"0.001", "0.5", "+Inf"} <= bounds
    assert values['stage_seconds_count{stage="detect"}'] == 5
    assert values['stage_seconds_bucket{le="0.005",stage="detect"}'] == 2
    median = histogram_quantile(values, "end_to_end_seconds", 0.5)
    assert median is not None and 0.02 < median <= 0.035
    empty = ServiceMetrics("display")
    empty.histogram("end_to_end", "Capture to drawn.")
    assert (
        histogram_quantile(parse_metrics(empty.exposition().decode()), "end_to_end_seconds", 0.5)
        is None
    )


def test_the_info_metric_says_what_runs_and_follows_changes() -> None:
    registry = ServiceMetrics("worker")
    registry.describe(model_version="vgg-abc", runtime="litert")
    assert parse_metrics(registry.exposition().decode()) == {
        'build_info{model_version="vgg-abc",runtime="litert"}': 1.0
    }
    registry.describe(model_version="vgg-def", runtime="litert")
    assert 'build_info{model_version="vgg-def",runtime="litert"}' in parse_metrics(
        registry.exposition().decode()
    )


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


def test_a_repeated_name_is_written_once() -> None:
    class Twice:
        def metrics(self) -> list[Sample]:
            return [Sample("a", 1, "gauge", "a"), Sample("a", 2, "gauge", "a")]

    registry = ServiceMetrics("x")
    registry.read_from(Twice())
    text = registry.exposition().decode()
    assert parse_metrics(text)["a"] == 1.0 and text.count("# TYPE emojify_x_a ") == 1


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
def served() -> Iterator[tuple[HttpServer, FakeSource]]:
    source = FakeSource()
    routes = status_routes(_registry(source), source.health)
    with HttpServer("capture-status", "127.0.0.1", 0, routes) as server:
        yield server, source


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_server_serves_metrics_and_health(served: tuple[HttpServer, FakeSource]) -> None:
    server, source = served
    code, kind, body = _get(server.url + "metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    assert parse_metrics(body.decode())["frames_sent_total"] == 12
    code, kind, body = _get(server.url + "healthz")
    assert (code, kind, json.loads(body)["status"]) == (200, "application/json", "ok")
    source.ok = False
    code, _, body = _get(server.url + "healthz")
    assert (code, json.loads(body)["status"]) == (503, "unhealthy")
    code, _, body = _get(server.url + "nothing")
    assert code == 404 and b"/healthz /metrics" in body


def test_a_client_that_resets_the_connection_mid_request_costs_no_traceback(
    served: tuple[HttpServer, FakeSource], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = served
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
        # SO_LINGER 0: close() sends a TCP reset instead of a FIN, mid-request.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.sendall(b"GET /metr")
    # The server still answers, and the reset left no traceback and no error.
    assert _get(server.url + "healthz")[0] == 200
    assert all(record.exc_info is None for record in caplog.records)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def _routes() -> dict[str, Route]:
    async def hello(_request: Request) -> Response:
        return reply(HTTPStatus.OK, "text/plain", b"hello\n")

    return {"/hello": hello}


def _ask(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read the answer until the server closes or 2 s pass."""
    sock.sendall(request)
    sock.settimeout(2.0)
    answer = b""
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"hello\n"):
                break
    return answer


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_time() -> None:
    limits = HttpLimits(idle_s=1)
    with (
        HttpServer("t", "127.0.0.1", 0, _routes(), limits=limits) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle,
    ):
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, not by the 5 s timeout
        assert 0.5 < time.monotonic() - started < 4.0


def test_past_the_connection_cap_a_request_is_answered_503_at_once() -> None:
    limits = HttpLimits(max_connections=8)
    with HttpServer("t", "127.0.0.1", 0, _routes(), limits=limits) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(8)]
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as late:
                started = time.monotonic()
                answer = _ask(late, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
                assert time.monotonic() - started < 1.0
        finally:
            for sock in held:
                sock.close()
        # Once they are gone, requests are served again.
        wait_for(lambda: _get(server.url + "hello")[0] == 200, 5, "the cap to free up")


def test_a_request_head_over_the_limit_is_refused() -> None:
    with HttpServer("t", "127.0.0.1", 0, _routes()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            big = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
            answer = _ask(client, big)
            assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:80]
        assert _get(server.url + "hello")[0] == 200


def test_port_zero_is_off_and_a_taken_port_is_an_error(
    served: tuple[HttpServer, FakeSource],
) -> None:
    server, source = served
    registry = _registry(source)
    assert start_status_server("127.0.0.1", 0, registry, source.health) is None
    with pytest.raises(StatusError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        start_status_server("127.0.0.1", server.port, registry, source.health)
