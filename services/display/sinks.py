"""Where rendered frames and results go: a window, an MJPEG page, a video file, JSON lines."""

from __future__ import annotations

import html
import json
import logging
import ssl
import threading
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import IO, Final, Protocol

import cv2
import numpy as np

from shared.http_server import HttpLimits, HttpServer, Request, Response, Route, query, reply
from shared.image import ImageU8, encode_jpeg
from shared.messages import ResultHeader

from .mjpeg import FrameBoard, mjpeg_route
from .page_auth import PageAuth, protect

__all__ = [
    "FrameSink",
    "HttpSink",
    "JsonLinesSink",
    "SinkError",
    "VideoFileSink",
    "WindowSink",
]

log = logging.getLogger(__name__)

#: Size of the page's picture before the first frame.
PLACEHOLDER_WH: Final = (640, 480)


class SinkError(RuntimeError):
    """A sink cannot do its job (e.g. the video file cannot be opened)."""


class FrameSink(Protocol):
    """Something that shows or stores rendered frames."""

    def show(self, frame_bgr: ImageU8) -> None: ...

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        """With several streams: one stream's own drawn frame (``show`` gets the grid)."""

    def tick(self) -> None:
        """Called every loop turn, frames or not (a window must keep handling events)."""

    def end_stream(self) -> None:
        """The shown stream has ended."""

    def close(self) -> None: ...


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


class VideoFileSink:
    """A video file opened at the first frame's size; later sizes are scaled to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size_wh: tuple[int, int] | None = None
        self._finished = False
        self.frames_written = 0

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        pass

    def show(self, frame_bgr: ImageU8) -> None:
        if self._finished:
            return
        height, width = frame_bgr.shape[:2]
        if self._writer is None:
            codec = "mp4v" if self._path.suffix.lower() == ".mp4" else "MJPG"
            self._path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(
                str(self._path), cv2.VideoWriter.fourcc(*codec), self._fps, (width, height)
            )
            if not writer.isOpened():
                raise SinkError(f"video sink cannot open {self._path} with codec {codec}")
            self._writer, self._size_wh = writer, (width, height)
            log.info(
                "video: writing %s (%s, %dx%d, %.1f fps)",
                self._path,
                codec,
                width,
                height,
                self._fps,
            )
        if self._size_wh != (width, height):
            frame_bgr = np.asarray(
                cv2.resize(frame_bgr, self._size_wh, interpolation=cv2.INTER_AREA), np.uint8
            )
        self._writer.write(frame_bgr)
        self.frames_written += 1

    def tick(self) -> None:
        pass

    def end_stream(self) -> None:
        """Finish the file so it is playable now; later frames are not written."""
        if self._writer is not None:
            log.info("video: finished %s (%d frames)", self._path, self.frames_written)
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._finished = True


class JsonLinesSink:
    """One JSON line per result received, flushed at once, whether or not its frame arrived."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as error:
            raise SinkError(f"jsonl sink cannot open {path}: {error}") from error

    def write(self, result: ResultHeader, received_at_ns: int) -> None:
        record = result.model_dump(mode="json")
        record["received_at_ns"] = received_at_ns
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
