"""Status over HTTP for every service: ``/metrics`` (Prometheus text) and ``/healthz`` (JSON)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal, Protocol, cast

__all__ = [
    "METRICS_CONTENT_TYPE",
    "Health",
    "LoopWatch",
    "Metric",
    "StatusError",
    "StatusServer",
    "StatusSource",
    "counters",
    "gauges",
    "metric_name",
    "render_health",
    "render_metrics",
    "serve_status_path",
    "start_status_server",
]

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
MetricKind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Metric:
    """One sample: ``emojify_<service>_<name>``; counters only grow, gauges go up and down."""

    name: str
    value: float
    kind: MetricKind
    help: str


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` answers: 200 with ``{"status": "ok", ...}`` or 503 with "unhealthy"."""

    ok: bool
    details: Mapping[str, object] = field(default_factory=dict)


class StatusSource(Protocol):
    """What a service exposes; called from the HTTP server's threads, so it must be safe there."""

    def metrics(self) -> list[Metric]: ...

    def health(self) -> Health: ...


def metric_name(service: str, name: str) -> str:
    """``emojify_<service>_<name>`` with every character Prometheus does not allow as ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"emojify_{service}_{name}")


def counters(values: Mapping[str, int], helps: Mapping[str, str]) -> list[Metric]:
    """Counter samples, sorted by name; help text from ``helps`` (else the name)."""
    return [
        Metric(name, float(value), "counter", helps.get(name, name))
        for name, value in sorted(values.items())
    ]


def gauges(
    values: Mapping[str, float | int | bool | None], helps: Mapping[str, str]
) -> list[Metric]:
    """Gauge samples in the given order; a None value (nothing measured yet) is left out."""
    return [
        Metric(name, float(value), "gauge", helps.get(name, name))
        for name, value in values.items()
        if value is not None
    ]


def _format_value(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render_metrics(service: str, metrics: Iterable[Metric]) -> bytes:
    """The Prometheus text exposition format: HELP and TYPE, then the sample, per metric."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        name = metric_name(service, metric.name)
        if name in seen:
            continue  # one sample per name; a later duplicate would make the scrape invalid
        seen.add(name)
        help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} {metric.kind}",
            f"{name} {_format_value(metric.value)}",
        ]
    return ("\n".join(lines) + "\n").encode()


def render_health(service: str, health: Health) -> tuple[HTTPStatus, bytes]:
    """Status code and JSON body of ``/healthz``."""
    body: dict[str, object] = {"status": "ok" if health.ok else "unhealthy", "service": service}
    body.update(health.details)
    status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, json.dumps(body, default=str).encode()


def reply(handler: BaseHTTPRequestHandler, status: HTTPStatus, kind: str, body: bytes) -> None:
    """Send a complete, uncached response (headers only for HEAD)."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def serve_status_path(
    handler: BaseHTTPRequestHandler, path: str, service: str, source: StatusSource
) -> bool:
    """Answer ``/metrics`` or ``/healthz`` on ``handler``; False for any other path.

    Lets a service with an HTTP server of its own (the display's page) serve the same two.
    """
    if path == "/metrics":
        reply(
            handler, HTTPStatus.OK, METRICS_CONTENT_TYPE, render_metrics(service, source.metrics())
        )
        return True
    if path == "/healthz":
        status, body = render_health(service, source.health())
        reply(handler, status, "application/json", body)
        return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: str, source: StatusSource) -> None:
        self.service = service
        self.source = source
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    timeout = 5.0
    server_version = "emojify-status"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status http %s: " + format, self.client_address[0], *args)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        path = self.path.split("?", 1)[0]
        try:
            if not serve_status_path(self, path, server.service, server.source):
                reply(
                    self,
                    HTTPStatus.NOT_FOUND,
                    "text/plain",
                    b"not found: try /metrics or /healthz\n",
                )
        except (ConnectionError, TimeoutError) as error:
            log.debug("status client %s went away: %s", self.client_address[0], error)


class StatusError(RuntimeError):
    """The status endpoint cannot listen where configured (port taken, bad address)."""


class StatusServer:
    """``/metrics`` and ``/healthz`` of one service on a daemon thread; a context manager.

    Raises OSError when the address cannot be bound (callers turn it into a start-up error).
    """

    def __init__(self, service: str, host: str, port: int, source: StatusSource) -> None:
        self._server = _Server((host, port), service, source)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"{service}-status",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> StatusServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class LoopWatch:
    """Health from a loop's last turn: unhealthy when it has not turned for ``stuck_after_s``."""

    def __init__(self, stuck_after_s: float, clock: Callable[[], float]) -> None:
        self._stuck_after_s = stuck_after_s
        self._clock = clock
        self._last_turn = clock()

    def turned(self) -> None:
        self._last_turn = self._clock()

    def health(self, **details: object) -> Health:
        age_s = self._clock() - self._last_turn
        return Health(age_s < self._stuck_after_s, {"loop_age_s": round(age_s, 3), **details})


def start_status_server(
    service: str, host: str, port: int, source: StatusSource
) -> StatusServer | None:
    """Serve ``source`` on ``host:port``; None when ``port`` is 0 (off). Raises StatusError."""
    if port == 0:
        return None
    try:
        server = StatusServer(service, host, port, source)
    except OSError as error:
        raise StatusError(f"status endpoint cannot listen on {host}:{port}: {error}") from error
    log.info("status: %smetrics and %shealthz", server.url, server.url)
    return server
