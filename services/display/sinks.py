"""Where the display shows rendered frames: a window and the live MJPEG page (the file sinks are
``shared.file_sinks``)."""

from __future__ import annotations

import html
import logging
import ssl
import threading
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Final

import cv2

from shared.file_sinks import SinkError
from shared.http_server import HttpLimits, HttpServer, Request, Response, Route, query, reply
from shared.image import ImageU8, encode_jpeg

from .mjpeg import FrameBoard, mjpeg_route
from .page_auth import PageAuth, protect

__all__ = ["PLACEHOLDER_WH", "HttpSink", "WindowSink"]

log = logging.getLogger(__name__)

#: Size of the page's picture before the first frame.
PLACEHOLDER_WH: Final = (640, 480)


class WindowSink:
    """An OpenCV window; 'q' or Esc in it sets ``stop``."""

    def __init__(self, title: str, stop: threading.Event) -> None:
        self._title = title
        self._stop = stop
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame_bgr: ImageU8) -> None:
        cv2.imshow(self._title, frame_bgr)
        self.tick()

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        pass

    def tick(self) -> None:
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            log.info("window: %s pressed, stopping", "q" if key == ord("q") else "Esc")
            self._stop.set()

    def end_stream(self) -> None:
        pass

    def close(self) -> None:
        cv2.destroyWindow(self._title)
        cv2.waitKey(1)


PAGE: Final = Path(__file__).resolve().parent / "assets" / "page.html"
#: A stream's own picture is served while it is this fresh; else the composite (one stream).
STREAM_FRESH_S: Final = 2.0


def _page(title: str) -> bytes:
    """The live page (assets/page.html): video, per-face bars and timelines, figures, picker."""
    return PAGE.read_text(encoding="utf-8").replace("{title}", html.escape(title)).encode()


class HttpSink:
    """The live page: ``/``, ``/stream.mjpg``, ``/snapshot.jpg`` (both take ``?stream=`` when
    several streams are shown), plus ``routes`` (the display's ``/state.json``, ``/metrics``
    and ``/healthz``) on the same port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        title: str,
        placeholder_bgr: ImageU8,
        jpeg_quality: int = 80,
        max_clients: int = 8,
        limits: HttpLimits | None = None,
        routes: Mapping[str, Route] | None = None,
        auth: PageAuth | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._quality = jpeg_quality
        self._board = FrameBoard(encode_jpeg(placeholder_bgr, jpeg_quality))
        # Each stream's own picture while several are shown (the composite is the grid).
        self._streams: dict[str, FrameBoard] = {}
        self._lock = threading.Lock()
        page = _page(title)

        async def serve_page(_request: Request) -> Response:
            return reply(HTTPStatus.OK, "text/html; charset=utf-8", page)

        async def serve_snapshot(request: Request) -> Response:
            return reply(HTTPStatus.OK, "image/jpeg", self._board_for(request).latest()[1])

        own: dict[str, Route] = {
            "/": serve_page,
            "/index.html": serve_page,
            "/stream.mjpg": mjpeg_route(self._board_for, max_clients),
            "/snapshot.jpg": serve_snapshot,
        }
        served = {**own, **(routes or {})}
        try:
            self._server = HttpServer(
                "display",
                host,
                port,
                served if auth is None else protect(served, auth),
                tls=tls,
                limits=limits,
            )
        except OSError as error:
            raise SinkError(f"http sink cannot listen on {host}:{port}: {error}") from error

    def _board_for(self, request: Request) -> FrameBoard:
        """The stream ``?stream=`` names while it is shown on its own, else the composite."""
        wanted = query(request).get("stream")
        with self._lock:
            board = self._streams.get(wanted) if wanted is not None else None
        if board is None or board.age_s() > STREAM_FRESH_S:
            return self._board
        return board

    @property
    def url(self) -> str:
        return self._server.url

    def show(self, frame_bgr: ImageU8) -> None:
        self._board.publish(encode_jpeg(frame_bgr, self._quality))

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        jpeg = encode_jpeg(frame_bgr, self._quality)
        with self._lock:
            board = self._streams.get(stream_id)
            if board is None:
                board = self._streams[stream_id] = FrameBoard(jpeg)
        board.publish(jpeg)

    def tick(self) -> None:
        pass

    def end_stream(self) -> None:
        pass

    def close(self) -> None:
        self._board.close()
        with self._lock:
            boards = list(self._streams.values())
        for board in boards:
            board.close()
        self._server.close()
