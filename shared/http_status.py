"""Status over HTTP for every service: ``/metrics`` (Prometheus) and ``/healthz`` (JSON)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from shared.http_server import HttpServer, Request, Response, Route, reply
from shared.metrics import CONTENT_TYPE, ServiceMetrics

__all__ = [
    "Health",
    "LoopWatch",
    "StatusError",
    "render_health",
    "start_status_server",
    "status_routes",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` answers: 200 with ``{"status": "ok", ...}`` or 503 with "unhealthy"."""

    ok: bool
    details: Mapping[str, object] = field(default_factory=dict)


def render_health(service: str, health: Health) -> tuple[HTTPStatus, bytes]:
    """Status code and JSON body of ``/healthz``."""
    body: dict[str, object] = {"status": "ok" if health.ok else "unhealthy", "service": service}
    body.update(health.details)
    status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, json.dumps(body, default=str).encode()


def status_routes(metrics: ServiceMetrics, health: Callable[[], Health]) -> dict[str, Route]:
    """``/metrics`` and ``/healthz`` of a service, as routes for an ``HttpServer``.

    ``health`` is called from the server's thread, so it must be safe there.
    """

    async def serve_metrics(_request: Request) -> Response:
        return reply(HTTPStatus.OK, CONTENT_TYPE, metrics.exposition())

    async def serve_health(_request: Request) -> Response:
        status, body = render_health(metrics.service, health())
        return reply(status, "application/json", body)

    return {"/metrics": serve_metrics, "/healthz": serve_health}


class StatusError(RuntimeError):
    """The status endpoint cannot listen where configured (port taken, bad address)."""


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
    host: str, port: int, metrics: ServiceMetrics, health: Callable[[], Health]
) -> HttpServer | None:
    """Serve the status routes on ``host:port``; None when ``port`` is 0 (off).

    Raises StatusError when the address cannot be bound.
    """
    if port == 0:
        return None
    try:
        server = HttpServer(f"{metrics.service}-status", host, port, status_routes(metrics, health))
    except OSError as error:
        raise StatusError(f"status endpoint cannot listen on {host}:{port}: {error}") from error
    log.info("status: %smetrics and %shealthz", server.url, server.url)
    return server
