"""Test harness for the display: runs it as a subprocess and plays capture and the workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from bench.loopback import free_loopback_port as free_port
from bench.loopback import scrape
from shared.image import encode_jpeg
from shared.messages import EndOfStream, Face, FrameHeader, ResultHeader
from shared.wire import encode
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
FRAME_WH = (320, 240)
FACE_BOX = (120, 70, 80, 90)
START_TIMEOUT_S = 30.0


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    # https here is always the display's own test certificate: trust it without a CA.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def frame_jpeg(seq: int) -> bytes:
    """A frame whose colours change with ``seq``: a coloured background and a 'face' disc."""
    width, height = FRAME_WH
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, :, 0] = (seq * 37) % 200 + 40
    frame[:, :, 1] = np.linspace(30, 90, width, dtype=np.uint8)[None, :]
    frame[:, :, 2] = 60
    x, y, w, h = FACE_BOX
    yy, xx = np.mgrid[0:height, 0:width]
    disc = ((xx - (x + w / 2)) / (w / 2)) ** 2 + ((yy - (y + h / 2)) / (h / 2)) ** 2 <= 1
    frame[disc] = (140, 170, 210)
    return encode_jpeg(frame, 90)


def frame_header(seq: int, stream_id: str = "cam0") -> FrameHeader:
    return FrameHeader(
        stream_id=stream_id,
        seq=seq,
        captured_at_ns=time.time_ns(),
        width=FRAME_WH[0],
        height=FRAME_WH[1],
    )


def result_with(header: FrameHeader, probabilities: list[float]) -> ResultHeader:
    """The result for ``header``: one face at FACE_BOX with these seven probabilities."""
    return ResultHeader(
        stream_id=header.stream_id,
        seq=header.seq,
        captured_at_ns=header.captured_at_ns,
        worker_id="test-worker",
        model_version="test-model",
        faces=(Face.from_probabilities(FACE_BOX, probabilities),),
        completed_at_ns=time.time_ns(),
    )


def result_for(header: FrameHeader, label_index: int = 3) -> ResultHeader:
    probabilities = [0.01] * 7
    probabilities[label_index] = 0.94
    return result_with(header, probabilities)


@dataclass
class DisplayProcess:
    """A running ``python -m services.display`` and the sockets that feed it."""

    process: subprocess.Popen[bytes]
    http_url: str
    publisher: zmq.Socket[bytes]
    pusher: zmq.Socket[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> dict[str, float]:
        return scrape(self.http_url)

    def snapshot(self) -> bytes:
        status, body = http_get(self.http_url + "snapshot.jpg")
        assert status == 200 and body[:2] == b"\xff\xd8"
        return body

    def send_frame(self, header: FrameHeader, jpeg: bytes | None = None) -> None:
        payload = frame_jpeg(header.seq) if jpeg is None else jpeg
        self.publisher.send_multipart(encode(header, payload))

    def send_result(self, result: ResultHeader) -> None:
        self.pusher.send_multipart(encode(result))

    def send_end(self, stream_id: str, frame_count: int) -> None:
        self.publisher.send_multipart(
            encode(EndOfStream(stream_id=stream_id, frame_count=frame_count))
        )

    def terminate(self, timeout_s: float) -> tuple[int, float]:
        """SIGTERM; the exit code and how long it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        return code, time.monotonic() - started


def wait_subscribed(display: DisplayProcess, timeout_s: float = 10.0) -> None:
    """Wait until the display's subscription reaches the harness's XPUB (a PUB drops every
    message until then)."""
    if not display.publisher.poll(int(timeout_s * 1000), zmq.POLLIN):
        raise AssertionError(f"the display did not subscribe to the preview in {timeout_s} s")
    assert display.publisher.recv()[:1] == b"\x01", "a subscription message"


@contextmanager
def running_display(tmp_path: Path, *args: str, scheme: str = "http") -> Iterator[DisplayProcess]:
    """Start the display on free loopback ports; always killed on the way out."""
    ctx: zmq.Context[Any] = zmq.Context()
    publisher = ctx.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    preview_port = publisher.bind_to_random_port("tcp://127.0.0.1")
    results_port, http_port = free_port(), free_port()
    pusher = ctx.socket(zmq.PUSH)
    pusher.setsockopt(zmq.LINGER, 0)
    pusher.setsockopt(zmq.SNDTIMEO, 2000)
    log_path = tmp_path / "display.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOJIFY_")}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONPATH"] = str(REPO)
    command = [
        sys.executable,
        "-m",
        "services.display",
        "--preview-endpoints",
        f"tcp://127.0.0.1:{preview_port}",
        "--results-endpoint",
        f"tcp://127.0.0.1:{results_port}",
        "--http-port",
        str(http_port),
        "--stats-interval-s",
        "1",
        *args,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    display = DisplayProcess(
        process, f"{scheme}://127.0.0.1:{http_port}/", publisher, pusher, log_path
    )
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"display exited {process.returncode}:\n{display.log_text()}")
            try:
                return http_get(display.http_url + "healthz", 0.5)[0] == 200
            except OSError:
                return False

        wait_for(healthy, START_TIMEOUT_S, "the display's /healthz")
        pusher.connect(f"tcp://127.0.0.1:{results_port}")
        yield display
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        ctx.destroy(linger=0)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 made by openssl (the test is skipped without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
