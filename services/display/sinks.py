"""Where rendered frames and results go: a window, an MJPEG page, a video file, JSON lines."""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Final, Protocol, cast

import cv2
import numpy as np

from shared.http_status import StatusSource, reply, serve_status_path
from shared.image import ImageU8, encode_jpeg
from shared.messages import ResultHeader

__all__ = [
    "FrameBoard",
    "FrameSink",
    "HttpSink",
    "JsonLinesSink",
    "SinkError",
    "VideoFileSink",
    "WindowSink",
]

log = logging.getLogger(__name__)

BOUNDARY: Final = "emojifyframe"
#: How long a streaming client waits for a new frame before checking for shutdown.
CLIENT_WAIT_S: Final = 0.5


class SinkError(RuntimeError):
    """A sink cannot do its job (e.g. the video file cannot be opened)."""


class FrameSink(Protocol):
    """Something that shows or stores rendered frames."""

    def show(self, frame_bgr: ImageU8) -> None: ...

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


class FrameBoard:
    """The latest JPEG and its number; readers wait on a condition, never block the writer."""

    def __init__(self, initial_jpeg: bytes) -> None:
        self._cond = threading.Condition()
        self._jpeg = initial_jpeg
        self._number = 0
        self._published_at = time.monotonic()
        self._closed = False

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._number += 1
            self._published_at = time.monotonic()
            self._cond.notify_all()

    def latest(self) -> tuple[int, bytes]:
        with self._cond:
            return self._number, self._jpeg

    def age_s(self) -> float:
        with self._cond:
            return time.monotonic() - self._published_at

    def wait_newer(self, after: int, timeout_s: float) -> tuple[int, bytes] | None:
        """The latest frame once its number passes ``after``; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._number > after, timeout_s)
            if self._closed or self._number <= after:
                return None
            return self._number, self._jpeg

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Streaming handlers end on their own within CLIENT_WAIT_S; do not wait for them.
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        board: FrameBoard,
        page: bytes,
        max_clients: int,
        status: StatusSource | None,
    ) -> None:
        self.board = board
        self.page = page
        self.clients = threading.BoundedSemaphore(max_clients)
        self.status = status
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    # A client that stops reading cannot hold a thread forever.
    timeout = 10.0
    disable_nagle_algorithm = True
    server_version = "emojify-display"

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.client_address[0], *args)

    def _reply(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        reply(self, status, content_type, body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._reply(HTTPStatus.OK, "text/html; charset=utf-8", self._server.page)
            elif path == "/stream.mjpg":
                self._stream()
            elif path == "/snapshot.jpg":
                self._reply(HTTPStatus.OK, "image/jpeg", self._server.board.latest()[1])
            elif path == "/healthz" and self._server.status is None:
                body = {"status": "ok", "last_frame_age_s": round(self._server.board.age_s(), 3)}
                self._reply(HTTPStatus.OK, "application/json", json.dumps(body).encode())
            elif self._server.status is not None and serve_status_path(
                self, path, "display", self._server.status
            ):
                pass
            else:
                self._reply(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except (ConnectionError, TimeoutError) as error:
            log.debug("http client %s went away: %s", self.client_address[0], error)

    def _stream(self) -> None:
        server = self._server
        if not server.clients.acquire(blocking=False):
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"too many viewers\n")
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            number, jpeg = server.board.latest()
            while True:
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()
                # Always the newest frame: a slow client skips frames instead of queueing them.
                newer = None
                while newer is None:
                    if server.board.closed:
                        return
                    newer = server.board.wait_newer(number, CLIENT_WAIT_S)
                number, jpeg = newer
        finally:
            server.clients.release()


def _page(title: str) -> bytes:
    safe = html.escape(title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{safe}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ margin: 0; background: #111; color: #ddd; font: 16px system-ui, sans-serif;
        display: flex; flex-direction: column; align-items: center; }}
 h1 {{ font-size: 1.2em; font-weight: 500; margin: 0.6em; }}
 img {{ max-width: 100vw; max-height: calc(100vh - 4em); background: #222; }}
</style></head>
<body><h1>{safe}</h1><img id="stream" src="/stream.mjpg" alt="{safe} live view"></body></html>
""".encode()


class HttpSink:
    """The MJPEG page: ``/``, ``/stream.mjpg``, ``/snapshot.jpg``; and ``status``'s ``/healthz``
    and ``/metrics`` (shared.http_status), or a bare ``/healthz`` without it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        title: str,
        placeholder_bgr: ImageU8,
        jpeg_quality: int = 80,
        max_clients: int = 8,
        status: StatusSource | None = None,
    ) -> None:
        self._quality = jpeg_quality
        self._board = FrameBoard(encode_jpeg(placeholder_bgr, jpeg_quality))
        try:
            self._server = _Server((host, port), self._board, _page(title), max_clients, status)
        except OSError as error:
            raise SinkError(f"http sink cannot listen on {host}:{port}: {error}") from error
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="display-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}/"

    def show(self, frame_bgr: ImageU8) -> None:
        self._board.publish(encode_jpeg(frame_bgr, self._quality))

    def tick(self) -> None:
        pass

    def end_stream(self) -> None:
        pass

    def close(self) -> None:
        self._board.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=1.0)


class VideoFileSink:
    """A video file opened at the first frame's size; later sizes are scaled to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size_wh: tuple[int, int] | None = None
        self._finished = False
        self.frames_written = 0

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
