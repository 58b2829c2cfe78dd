"""One small HTTP server for every service: a table of paths on a daemon thread.

The status endpoints (``/metrics``, ``/healthz``) and the display's page and MJPEG stream are
all routes on it. A client that resets its connection, stops reading or fails the TLS
handshake costs one log line, never a traceback.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs

__all__ = ["HttpServer", "Route", "query", "reply"]

log = logging.getLogger(__name__)

#: Answers one request on the handler it is given.
Route = Callable[[BaseHTTPRequestHandler], None]


def query(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """The request's query parameters (the last value of each)."""
    _, _, text = handler.path.partition("?")
    return {key: values[-1] for key, values in parse_qs(text).items()}


def reply(handler: BaseHTTPRequestHandler, status: HTTPStatus, kind: str, body: bytes) -> None:
    """Send a complete, uncached response (headers only for HEAD)."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _gone(name: str, client: Any, error: BaseException) -> None:
    host = client[0] if isinstance(client, tuple) and client else client
    log.info("%s: client %s went away: %s", name, host, error or type(error).__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Streaming handlers end on their own; never wait for them on close.
    block_on_close = False

    def __init__(self, address: tuple[str, int], name: str, routes: Mapping[str, Route]) -> None:
        self.name = name
        self.routes = dict(routes)
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError | ssl.SSLError):
            _gone(self.name, client_address, error)
        else:
            log.exception("%s: request from %s failed", self.name, client_address)


class _Handler(BaseHTTPRequestHandler):
    # A client that stops reading cannot hold a thread forever.
    timeout = 10.0
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    @property
    def server_version(self) -> str:  # type: ignore[override]
        return f"emojify-{self._server.name}"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s http %s: " + format, self._server.name, self.client_address[0], *args)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        # A route that takes a form (the login) reads handler.command; others ignore the body.
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = self._server.routes.get(path)
        try:
            if route is None:
                paths = " ".join(sorted(self._server.routes))
                reply(
                    self, HTTPStatus.NOT_FOUND, "text/plain", f"not found: try {paths}\n".encode()
                )
            else:
                route(self)
        except (ConnectionError, TimeoutError, ssl.SSLError) as error:
            _gone(self._server.name, self.client_address, error)


class HttpServer:
    """Serves ``routes`` on ``host:port`` from a daemon thread; a context manager.

    Raises OSError when the address cannot be bound (callers turn it into a start-up error).
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        poll_interval_s: float = 0.2,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._server = _Server((host, port), name, routes)
        self.scheme = "http"
        if tls is not None:
            # The handshake happens in each request's own thread, not in the accept loop.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": poll_interval_s},
            name=f"{name}-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        text = host.decode() if isinstance(host, bytes) else str(host)
        return f"{self.scheme}://{f'[{text}]' if ':' in text else text}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
