"""The live page under N viewers, with and without a crowd of idle connections.

The display's ``HttpSink`` serves ``/stream.mjpg`` on 127.0.0.1 while a publisher shows a
640x480 frame ``--fps`` times a second (the recording's frames, in turn). ``--clients`` viewers
read the stream over real sockets; each JPEG they receive is matched, by its hash, with the
moment it was shown. Reported: frames per second each viewer got, the delay from ``show`` to
the viewer's last byte of the frame (p50, p95), and, after ``--idle`` connections that never
send a byte have been opened, how long a new client waits for its first frame.

    .venv/bin/python -m bench.page_clients [--clients 8] [--fps 30] [--seconds 10]
        [--idle 500] [--out var/bench/page_clients.json]
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.common import BenchSettings, load_frames, print_table, write_result
from services.display.sinks import HttpSink
from shared.image import encode_jpeg
from shared.settings import load_settings

QUALITY = 80
#: A viewer that gets nothing for this long is counted as stalled and stops.
STALL_S = 5.0
#: Opening the idle connections (0.3 s at most each) stops after this long.
IDLE_BUDGET_S = 30.0


def _read_until(sock: socket.socket, buffer: bytearray, marker: bytes) -> int:
    """Read until ``marker`` is in ``buffer``; its index."""
    while (index := buffer.find(marker)) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("stream closed")
        buffer += chunk
    return index


def _read_exactly(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        chunk = sock.recv(max(65536, size - len(buffer)))
        if not chunk:
            raise ConnectionError("stream closed")
        buffer += chunk
    part = bytes(buffer[:size])
    del buffer[:size]
    return part


def view(port: int, until: float, shown: dict[str, float], out: list[float]) -> int:
    """Read ``/stream.mjpg`` until ``until``; append each frame's delay (s) to ``out``; the
    number of frames received."""
    frames = 0
    with socket.create_connection(("127.0.0.1", port), timeout=STALL_S) as sock:
        sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        buffer = bytearray()
        end = _read_until(sock, buffer, b"\r\n\r\n")
        del buffer[: end + 4]
        while time.monotonic() < until:
            end = _read_until(sock, buffer, b"\r\n\r\n")
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            length = next(
                int(line.split(":", 1)[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            )
            jpeg = _read_exactly(sock, buffer, length + 2)[:length]
            received = time.monotonic()
            at = shown.get(hashlib.blake2b(jpeg, digest_size=8).hexdigest())
            if at is not None:
                out.append(received - at)
            frames += 1
    return frames


def first_frame_s(port: int) -> float:
    """Seconds from connecting to the first whole frame header of ``/stream.mjpg``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=STALL_S) as sock:
        sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        buffer = bytearray()
        _read_until(sock, buffer, b"Content-Type: image/jpeg")
    return time.monotonic() - started


def run(clients: int, fps: float, seconds: float, idle: int) -> dict[str, Any]:
    pictures = [frame.frame_bgr for frame in load_frames(limit=30)]
    sink = HttpSink(
        "127.0.0.1",
        0,
        title="bench",
        placeholder_bgr=np.zeros((480, 640, 3), np.uint8),
        jpeg_quality=QUALITY,
        max_clients=max(8, clients + 2),
    )
    port = int(sink.url.rsplit(":", 1)[1].strip("/"))
    shown: dict[str, float] = {}
    stop = threading.Event()

    def publish() -> None:
        index = 0
        while not stop.is_set():
            picture = pictures[index % len(pictures)].copy()
            picture[0, 0] = index % 251  # every frame a different JPEG
            jpeg = encode_jpeg(picture, QUALITY)
            shown[hashlib.blake2b(jpeg, digest_size=8).hexdigest()] = time.monotonic()
            sink.show(picture)
            index += 1
            stop.wait(1.0 / fps)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    delays: list[list[float]] = [[] for _ in range(clients)]
    counts = [0] * clients
    until = time.monotonic() + seconds

    def viewer(i: int) -> None:
        try:
            counts[i] = view(port, until, shown, delays[i])
        except OSError:
            counts[i] = -1

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    idle_sockets: list[socket.socket] = []
    refused = 0
    give_up = time.monotonic() + IDLE_BUDGET_S
    for _ in range(idle):
        if time.monotonic() > give_up:
            break
        try:
            idle_sockets.append(socket.create_connection(("127.0.0.1", port), timeout=0.3))
        except OSError:
            refused += 1
    try:
        wait_s: float | None = first_frame_s(port)
    except OSError:
        wait_s = None
    for sock in idle_sockets:
        sock.close()
    stop.set()
    publisher.join()
    sink.close()
    every = [d for per in delays for d in per]
    return {
        "clients": clients,
        "fps_shown": fps,
        "seconds": seconds,
        "fps_per_viewer_min": min(counts) / seconds,
        "fps_per_viewer_mean": float(np.mean(counts)) / seconds,
        "delay_ms_p50": 1000 * float(np.percentile(every, 50)) if every else None,
        "delay_ms_p95": 1000 * float(np.percentile(every, 95)) if every else None,
        "idle_opened": len(idle_sockets),
        "idle_timed_out": refused,
        "first_frame_s_with_idle": wait_s,
    }


class PageClientsBench(BenchSettings):
    """The live page under N viewers, with and without a crowd of idle connections."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.page_clients")

    clients: int = Field(default=8, ge=1, description="Viewers of /stream.mjpg.")
    fps: float = Field(default=30.0, gt=0, description="Frames shown a second.")
    seconds: float = Field(default=10.0, gt=0, description="Measured window.")
    idle: int = Field(default=500, ge=0, description="Idle connections in the crowd.")


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(PageClientsBench, argv)
    result = run(args.clients, args.fps, args.seconds, args.idle)
    print_table(["measure", "value"], [[key, value] for key, value in result.items()])
    write_result(args.out_file("page_clients"), "page_clients", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
