"""One small HTTP server for every service: a table of paths, served by uvicorn from a thread.

The status endpoints (``/metrics``, ``/healthz``) and the display's page and MJPEG stream are
all routes on it: ``async`` functions from a Starlette ``Request`` to a ``Response``. uvicorn
(asyncio, h11) holds every connection on one event loop, so idle connections cost a socket,
not a thread. Its limits are ours (``HttpLimits``): past ``max_connections`` a request is
answered 503 at once; a connection that sends nothing for ``idle_s`` is closed, whether it is
new or kept alive; a request head over ``max_head_bytes`` is refused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.log_throttle import LogThrottle, and_more

__all__ = ["HttpLimits", "HttpServer", "Request", "Response", "Route", "query", "reply"]

log = logging.getLogger(__name__)

#: Answers one request.
Route = Callable[[Request], Awaitable[Response]]
METHODS: Final = frozenset({"GET", "HEAD", "POST"})
#: How long ``close`` lets open responses (MJPEG viewers) finish before cancelling them.
CLOSE_GRACE_S: Final = 1.0


@dataclass(frozen=True)
class HttpLimits:
    """What one server admits; beyond it new requests are answered 503 at once."""

    #: Open connections (idle ones included) and running requests, each.
    max_connections: int = 1000
    #: A connection with no request under way is closed after this long without a byte.
    idle_s: float = 10.0
    #: Connections the kernel queues before the server accepts them.
    backlog: int = 1024
    #: The most bytes of a request line and headers.
    max_head_bytes: int = 16 * 1024


def query(request: Request) -> dict[str, str]:
    """The request's query parameters (the last value of each)."""
    return dict(request.query_params)


def reply(status: HTTPStatus, kind: str, body: bytes, **headers: str) -> Response:
    """A complete, uncached response (uvicorn sends headers only for HEAD)."""
    return Response(
        body,
        status_code=status,
        media_type=kind,
        headers={"Cache-Control": "no-store", **headers},
    )


class _Throttled(logging.Filter):
    """uvicorn's warnings (a request over the connection cap, one that does not parse) at most
    once per interval each, with how many were left out: a flood costs a line, not a disk."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._throttles: dict[str, LogThrottle] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        text = str(record.msg)
        with self._lock:
            throttle = self._throttles.setdefault(text, LogThrottle())
        suppressed = throttle.ready()
        if suppressed is None:
            return False
        record.msg = f"http: {text}{and_more(suppressed)}"
        return True


logging.getLogger("uvicorn.error").addFilter(_Throttled())


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with the idle timeout armed from the first moment: a
    connection that never sends a request is closed like an idle kept-alive one."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


class _App:
    """The ASGI application: the route for the path, 404 with the paths, 405, 500 logged."""

    def __init__(self, name: str, routes: Mapping[str, Route], max_head_bytes: int) -> None:
        self._name = name
        self._routes = dict(routes)
        self._paths = " ".join(sorted(self._routes))
        self._max_head_bytes = max_head_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        route = self._routes.get(request.url.path)
        head_bytes = sum(len(key) + len(value) + 4 for key, value in scope["headers"])
        if head_bytes > self._max_head_bytes:
            # h11 bounds a head that arrives in pieces; this bounds one that came at once.
            response = reply(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "text/plain", b"headers too large\n"
            )
        elif route is None:
            response = reply(
                HTTPStatus.NOT_FOUND, "text/plain", f"not found: try {self._paths}\n".encode()
            )
        elif request.method not in METHODS:
            response = reply(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"GET, HEAD or POST\n")
        else:
            try:
                response = await route(request)
            except ClientDisconnect:
                # Gone before its body came (a closed tab, a dropped link): nothing to answer.
                log.info(
                    "%s: %s %s: the client went away", self._name, request.method, request.url.path
                )
                return
            except Exception:
                log.exception("%s: %s %s failed", self._name, request.method, request.url.path)
                response = reply(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"error\n")
        await response(scope, receive, send)


class HttpServer:
    """Serves ``routes`` on ``host:port`` from a daemon thread; a context manager.

    The socket is bound and listening when the constructor returns (clients that come before
    the event loop runs wait in the backlog). Raises OSError when the address cannot be bound
    (callers turn it into a start-up error).
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        tls: ssl.SSLContext | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        limits = limits or HttpLimits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=limits.backlog)
        config = uvicorn.Config(
            _App(name, routes, limits.max_head_bytes),
            http=_Protocol,
            lifespan="off",
            log_config=None,  # uvicorn's loggers go through the service's own logging
            log_level="warning",
            access_log=False,
            server_header=False,
            headers=[("Server", f"emojify-{name}")],
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=max(1, round(limits.idle_s)),
            timeout_graceful_shutdown=max(1, round(CLOSE_GRACE_S)),
            backlog=limits.backlog,
            h11_max_incomplete_event_size=limits.max_head_bytes,
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
        )
        self.scheme = "http" if tls is None else "https"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=f"{name}-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException:
            log.exception("http server stopped")

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = str(self._socket.getsockname()[0])
        return f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=CLOSE_GRACE_S + 2.0)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=2.0)
        self._socket.close()

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
