"""The live page's video: the latest JPEG of a stream (``FrameBoard``) and ``/stream.mjpg``,
which sends it and every newer one to at most ``max_clients`` viewers as multipart JPEG."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Final

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from shared.http_server import Request, Response, Route, reply

__all__ = ["BOUNDARY", "FrameBoard", "mjpeg_route"]

BOUNDARY: Final = "emojifyframe"
#: How long a streaming client waits for a new frame before checking for shutdown.
CLIENT_WAIT_S: Final = 0.5


class FrameBoard:
    """The latest JPEG and its number; readers (coroutines) wait on an event that ``publish``
    sets through their loop, so the writer never blocks."""

    def __init__(self, initial_jpeg: bytes) -> None:
        self._lock = threading.Lock()
        self._jpeg = initial_jpeg
        self._number = 0
        self._published_at = time.monotonic()
        self._closed = False
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def publish(self, jpeg: bytes) -> None:
        with self._lock:
            self._jpeg = jpeg
            self._number += 1
            self._published_at = time.monotonic()
            waiters = list(self._waiters)
        _wake(waiters)

    def latest(self) -> tuple[int, bytes]:
        with self._lock:
            return self._number, self._jpeg

    def age_s(self) -> float:
        with self._lock:
            return time.monotonic() - self._published_at

    async def next_newer(self, after: int, timeout_s: float) -> tuple[int, bytes] | None:
        """The latest frame once its number passes ``after``; None on timeout or close. The
        event loop goes on while it waits: ``publish`` wakes it through the loop."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self._closed or self._number > after:
                return self._newer(after)
            self._waiters.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await entry[1].wait()
        finally:
            with self._lock:
                self._waiters.discard(entry)
        with self._lock:
            return self._newer(after)

    def _newer(self, after: int) -> tuple[int, bytes] | None:
        """The latest frame if newer than ``after`` and not closed (the lock is held)."""
        if self._closed or self._number <= after:
            return None
        return self._number, self._jpeg

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
        _wake(waiters)


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
    """Set each waiting coroutine's event from this thread, through its own loop."""
    for loop, event in waiters:
        with contextlib.suppress(RuntimeError):  # that loop has closed
            loop.call_soon_threadsafe(event.set)


class _Viewer:
    """One place among a stream's ``max_clients``, given back once, however the stream ends."""

    def __init__(self, places: threading.BoundedSemaphore) -> None:
        self._places = places
        self._lock = threading.Lock()
        self._held = True

    def leave(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._places.release()


def _part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def mjpeg_route(boards: Callable[[Request], FrameBoard], max_clients: int) -> Route:
    """``/stream.mjpg``: the newest frame, then every newer one, to at most ``max_clients``."""
    places = threading.BoundedSemaphore(max_clients)
    kind = f"multipart/x-mixed-replace; boundary={BOUNDARY}"

    async def stream(request: Request) -> Response:
        board = boards(request)
        if request.method == "HEAD":
            return reply(HTTPStatus.OK, kind, b"")
        if not places.acquire(blocking=False):
            return reply(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"too many viewers\n")
        viewer = _Viewer(places)

        async def parts() -> AsyncIterator[bytes]:
            try:
                number, jpeg = board.latest()
                while True:
                    yield _part(jpeg)
                    # Always the newest frame: a slow client skips frames instead of queueing.
                    newer = None
                    while newer is None:
                        if board.closed:
                            return
                        newer = await board.next_newer(number, CLIENT_WAIT_S)
                    number, jpeg = newer
            finally:
                viewer.leave()

        return StreamingResponse(
            parts(),
            media_type=kind,
            headers={"Cache-Control": "no-store", "Connection": "close"},
            background=BackgroundTask(viewer.leave),
        )

    return stream
