"""``python -m services.capture`` as a real subprocess; the test acts as worker and display."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from bench.loopback import free_loopback_port as free_port
from bench.loopback import scrape
from services.capture.main import run
from services.capture.settings import CaptureSettings
from services.capture.sources import RawFrame
from shared.image import encode_jpeg
from shared.messages import EndOfStream, FrameHeader, Heartbeat, WorkRequest
from shared.settings import load_settings
from shared.transport import make_socket
from shared.wire import decode, encode
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 20.0  # two busy cores: importing numpy, OpenCV and pydantic can be slow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def make_recording(folder: Path, count: int) -> Path:
    (folder / "frames").mkdir(parents=True)
    frames = []
    for index in range(count):
        name = f"frames/{index:06d}.jpg"
        (folder / name).write_bytes(encode_jpeg(np.full((48, 64, 3), 10 * index, np.uint8)))
        frames.append({"file": name, "faces": []})
    recording = {"stream_id": "rec", "fps": 15.0, "width": 64, "height": 48, "frames": frames}
    (folder / "recording.json").write_text(json.dumps(recording))
    return folder


class Capture:
    """A running capture subprocess; its stderr goes to a file we can read at any time."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.frames_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.preview_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.status_url = f"http://127.0.0.1:{free_port()}/"
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("EMOJIFY_")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.capture",
                "--frames-endpoint",
                self.frames_endpoint,
                "--preview-endpoint",
                self.preview_endpoint,
                "--status-port",
                self.status_url.rsplit(":", 1)[1].rstrip("/"),
                # Lossless runs here do without a display unless a test says otherwise.
                "--display-wait-s",
                "0",
                *args,
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout_s: float) -> re.Match[str]:
        def logged() -> bool:
            assert self.proc.poll() is None, f"capture exited:\n{self.log()}"
            return re.search(pattern, self.log()) is not None

        wait_for(logged, timeout_s, lambda: f"{pattern!r} in the capture log:\n{self.log()}")
        found = re.search(pattern, self.log())
        assert found is not None
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def start_capture(tmp_path: Path) -> Iterator[Callable[..., Capture]]:
    started: list[Capture] = []

    def start(*args: str) -> Capture:
        capture = Capture(list(args), tmp_path / f"capture-{len(started)}.log")
        started.append(capture)
        return capture

    yield start
    for capture in started:
        capture.kill()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def connect_display(ctx: zmq.Context[Any], capture: Capture) -> zmq.Socket[bytes]:
    sub = make_socket(ctx, zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(capture.preview_endpoint)
    return sub


def connect_worker(ctx: zmq.Context[Any], capture: Capture, name: str) -> zmq.Socket[bytes]:
    dealer = make_socket(ctx, zmq.DEALER, identity=name.encode())
    dealer.connect(capture.frames_endpoint)
    return dealer


def run_worker_until_end(
    dealer: zmq.Socket[bytes], sub: zmq.Socket[bytes], name: str, timeout_s: float
) -> tuple[list[int], list[int], EndOfStream]:
    """Act as a worker (credit 2, one more per frame) and a display, until EndOfStream."""
    dealer.send_multipart(encode(WorkRequest(worker_id=name, credit=2)))
    worked: list[int] = []
    previewed: list[int] = []
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    poller.register(sub, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for sock, _ in poller.poll(100):
            message, payload = decode(sock.recv_multipart())
            if isinstance(message, EndOfStream):
                # The end comes on the preview socket; a frame sent just before it may still
                # wait on the worker socket.
                while dealer.poll(200, zmq.POLLIN):
                    header, _ = decode(dealer.recv_multipart())
                    assert isinstance(header, FrameHeader)
                    worked.append(header.seq)
                return worked, previewed, message
            assert isinstance(message, FrameHeader)
            assert payload[:2] == b"\xff\xd8"
            if sock is dealer:
                worked.append(message.seq)
                dealer.send_multipart(encode(WorkRequest(worker_id=name, credit=1)))
            else:
                previewed.append(message.seq)
    raise AssertionError(f"no EndOfStream after {timeout_s} s; worked on {worked}")


def test_lossless_delivers_every_frame_once_then_end_of_stream(
    tmp_path: Path, start_capture: Callable[..., Capture], ctx: zmq.Context[Any]
) -> None:
    count = 25
    recording = make_recording(tmp_path / "rec", count)
    capture = start_capture(
        "--source", str(recording), "--mode", "lossless", "--pace", "fast",
        "--display-wait-s", "60",
    )  # fmt: skip
    capture.wait_for_log(r"capture ready", STARTUP_S)
    # The worker comes first: capture holds the first frame until the display subscribes.
    dealer = connect_worker(ctx, capture, "w1")
    dealer.send_multipart(encode(WorkRequest(worker_id="w1", credit=1)))
    capture.wait_for_log(r"the first frame waits up to 60.0 s for a display", 5)
    assert not dealer.poll(300), "a frame went out before any display listened"
    sub = connect_display(ctx, capture)

    worked, previewed, end = run_worker_until_end(dealer, sub, "w1", timeout_s=20)

    assert worked == list(range(count))
    assert previewed == list(range(count))
    assert (end.stream_id, end.frame_count, end.dropped) == ("rec", count, 0)
    # It stays up, idle, after the end (exit_at_end is off), and says so.
    status, body = http_get_json(capture.status_url + "healthz")
    assert (status, body["ended"], body["seq"]) == (200, True, count)
    assert capture.proc.poll() is None


def test_loop_keeps_counting_seq(
    tmp_path: Path, start_capture: Callable[..., Capture], ctx: zmq.Context[Any]
) -> None:
    recording = make_recording(tmp_path / "rec", 3)
    capture = start_capture(
        "--source", str(recording), "--mode", "lossless", "--pace", "fast", "--loop"
    )
    capture.wait_for_log(r"capture ready", STARTUP_S)
    dealer = connect_worker(ctx, capture, "w1")
    dealer.send_multipart(encode(WorkRequest(worker_id="w1", credit=1)))
    seqs, payloads = [], []
    for _ in range(8):
        assert dealer.poll(10_000), capture.log()
        header, payload = decode(dealer.recv_multipart())
        assert isinstance(header, FrameHeader)
        seqs.append(header.seq)
        payloads.append(payload)
        dealer.send_multipart(encode(WorkRequest(worker_id="w1", credit=1)))
    assert seqs == list(range(8))
    assert payloads[3:6] == payloads[0:3]  # the same recorded bytes again, new seq numbers


def test_malformed_requests_are_counted_and_survived(
    tmp_path: Path, start_capture: Callable[..., Capture], ctx: zmq.Context[Any]
) -> None:
    recording = make_recording(tmp_path / "rec", 5)
    capture = start_capture(
        "--source", str(recording), "--mode", "lossless", "--stats-interval-s", "0.5"
    )
    capture.wait_for_log(r"capture ready", STARTUP_S)
    rogue = connect_worker(ctx, capture, "rogue")
    garbage = [
        [b"garbage"],  # one frame
        [b"\x01", b"\x02", b"\x03"],  # three frames
        [b"\xc1", b""],  # 0xc1 is never valid msgpack
        encode(EndOfStream(stream_id="rogue", frame_count=1)),  # valid message, wrong kind
        [encode(WorkRequest(worker_id="rogue", credit=1))[0], b"unexpected payload"],
    ]
    for frames in garbage:
        rogue.send_multipart(frames)
    capture.wait_for_log(r"stats .*malformed=5\b", timeout_s=10)
    assert "malformed message" in capture.log()

    dealer = connect_worker(ctx, capture, "w1")
    sub = connect_display(ctx, capture)
    worked, _, end = run_worker_until_end(dealer, sub, "w1", timeout_s=20)
    assert worked == list(range(5))
    assert end.frame_count == 5
    assert capture.proc.poll() is None


def test_sigterm_exits_zero_promptly(tmp_path: Path, start_capture: Callable[..., Capture]) -> None:
    recording = make_recording(tmp_path / "rec", 5)
    capture = start_capture("--source", str(recording), "--loop")
    capture.wait_for_log(r"capture ready", STARTUP_S)
    capture.proc.send_signal(signal.SIGTERM)
    # Looping forever, it stops only because of the signal (supervisord waits 10 s, then kills).
    assert capture.proc.wait(timeout=5) == 0
    assert "received SIGTERM" in capture.log()


def test_exit_at_end(tmp_path: Path, start_capture: Callable[..., Capture]) -> None:
    recording = make_recording(tmp_path / "rec", 3)
    # live mode with no worker: all frames are read at the source's pace, then dropped
    capture = start_capture("--source", str(recording), "--exit-at-end")
    assert capture.proc.wait(timeout=STARTUP_S) == 0
    assert "end of stream rec: 3 frames, 3 dropped" in capture.log()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mode", "bogus"], r"mode \(--mode / EMOJIFY_CAPTURE_MODE\): found 'bogus'"),
        (["--max-credit", "0"], r"max_credit .*found '?0'?"),
        (["--source", "/no/such/video.mp4"], r"source '/no/such/video.mp4' not found"),
    ],
    ids=["bad-mode", "bad-credit", "missing-source"],
)
def test_bad_start_exits_2_with_a_clear_message(
    start_capture: Callable[..., Capture], args: list[str], expected: str
) -> None:
    capture = start_capture(*args)
    assert capture.proc.wait(timeout=STARTUP_S) == 2
    assert re.search(expected, capture.log()), capture.log()


class GatedSource:
    """A source whose first frame waits for ``gate``: lets a test arrange the sockets first."""

    fps = 15.0
    default_stream_id = "gated"
    self_paced = False
    skipped = 0

    def __init__(self, count: int, gate: threading.Event) -> None:
        self._jpegs = [encode_jpeg(np.full((48, 64, 3), 10 * i, np.uint8)) for i in range(count)]
        self._gate = gate
        #: Set when capture first asks for a frame (it does so only with a worker's credit).
        self.asked = threading.Event()

    def frames(self) -> Iterator[RawFrame]:
        self.asked.set()
        assert self._gate.wait(timeout=10)
        for jpeg in self._jpegs:
            yield RawFrame(jpeg, 64, 48)

    def close(self) -> None:
        pass


def test_vanished_worker_is_forgotten_and_its_frame_goes_to_the_next(
    ctx: zmq.Context[Any],
) -> None:
    status_port = free_port()
    settings = load_settings(
        CaptureSettings,
        [
            "--mode=lossless",
            "--pace=fast",
            "--display-wait-s=0",
            f"--frames-endpoint=tcp://127.0.0.1:{free_port()}",
            f"--preview-endpoint=tcp://127.0.0.1:{free_port()}",
            "--exit-at-end",
            f"--status-port={status_port}",
            "--worker-timeout-s=1",
        ],
    )
    status_url = f"http://127.0.0.1:{status_port}/"

    def metric(name: str) -> float:
        try:
            return scrape(status_url).get(name, 0.0)
        except OSError:
            return 0.0  # not listening yet

    gate, stop = threading.Event(), threading.Event()
    source = GatedSource(6, gate)
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(run(settings, stop, ctx=ctx, source=source))
    )
    thread.start()
    try:
        # A worker asks for frames and disappears before capture has read any.
        ghost = ctx.socket(zmq.DEALER)
        ghost.setsockopt(zmq.IDENTITY, b"ghost")
        ghost.connect(settings.frames_endpoint)
        ghost.send_multipart(encode(WorkRequest(worker_id="ghost", credit=4, started_at_ns=1)))
        # With the ghost's credit, capture asks the source for the first frame (held at the gate).
        wait_for(source.asked.is_set, 10, "capture to take the ghost's credit")
        ghost.close(linger=1000)
        # Capture reads the first frame and hands it to the ghost: the send fails (capture saw
        # the disconnect) or goes nowhere (it has not yet: the ghost, which said when it
        # started, is then lost as silent and what it held goes to the next worker).
        gate.set()
        wait_for(
            lambda: metric("frames_sent_total") + metric("unreachable_total") >= 1,
            10,
            "the first frame handed to the ghost",
        )

        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IDENTITY, b"w1")
        dealer.connect(settings.frames_endpoint)
        dealer.send_multipart(encode(WorkRequest(worker_id="w1", credit=2, started_at_ns=2)))
        worked: list[int] = []
        deadline = time.monotonic() + 15
        while len(worked) < 6 and time.monotonic() < deadline:
            if not dealer.poll(100):
                # Idle, w1 stays alive as a real worker does, while the ghost is given up on.
                dealer.send_multipart(encode(Heartbeat(sender="w1", sent_at_ns=time.time_ns())))
                continue
            header, _ = decode(dealer.recv_multipart())
            assert isinstance(header, FrameHeader)
            worked.append(header.seq)
            done = WorkRequest(worker_id="w1", credit=1, done=(header.seq,), started_at_ns=2)
            dealer.send_multipart(encode(done))
        assert sorted(worked) == list(range(6)), "every frame once, the ghost's one to w1"
        thread.join(timeout=5)
        assert result == [0]
    finally:
        gate.set()
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def metrics_of(capture: Capture) -> dict[str, float]:
    return scrape(capture.status_url)


def take_frame(dealer: zmq.Socket[bytes], timeout_s: float = 10.0) -> int:
    assert dealer.poll(int(timeout_s * 1000)), "no frame"
    header, _ = decode(dealer.recv_multipart())
    assert isinstance(header, FrameHeader)
    return header.seq


@pytest.mark.parametrize("mode", ["lossless", "live"])
def test_a_silent_worker_is_lost_and_its_frames_go_to_another_or_are_dropped(
    tmp_path: Path, start_capture: Callable[..., Capture], ctx: zmq.Context[Any], mode: str
) -> None:
    recording = make_recording(tmp_path / "rec", 6)
    capture = start_capture(
        "--source", str(recording), "--mode", mode, "--pace", "fast", "--worker-timeout-s", "1"
    )
    capture.wait_for_log(r"capture ready", STARTUP_S)
    status, body = http_get_json(capture.status_url + "healthz")
    assert (status, body["status"], body["mode"]) == (200, "ok", mode)
    # w1 says when it started (so capture keeps what it hands it), takes two frames, falls silent.
    w1 = connect_worker(ctx, capture, "w1")
    w1.send_multipart(encode(WorkRequest(worker_id="w1", credit=2, started_at_ns=1)))
    held = [take_frame(w1), take_frame(w1)]
    w2 = connect_worker(ctx, capture, "w2")
    w2.send_multipart(encode(WorkRequest(worker_id="w2", credit=1, started_at_ns=2)))
    seen: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not w2.poll(200):
            # Idle, w2 stays alive as a real worker does; only w1 falls silent.
            w2.send_multipart(encode(Heartbeat(sender="w2", sent_at_ns=time.time_ns())))
            continue
        seq = take_frame(w2)
        seen.append(seq)
        w2.send_multipart(
            encode(WorkRequest(worker_id="w2", credit=1, done=(seq,), started_at_ns=2))
        )
        if max(seen) == 5 and (mode == "live" or set(held) <= set(seen)):
            break
    capture.wait_for_log(r"worker b'w1' lost \(not heard from for 1.0 s\)", 5)
    if mode == "lossless":
        # Capture counts a frame re-sent just after sending it, so w2 may hold the frame before
        # the count moves: wait for the line logged after the count.
        for seq in held:
            capture.wait_for_log(rf"frame {seq} re-sent to worker b'w2'", 5)
    metrics = metrics_of(capture)
    assert metrics["worker_lost_total"] >= 1
    if mode == "lossless":
        assert sorted(seen) == list(range(6)), "w2 gets every frame, w1's once more"
        assert metrics["redispatched_total"] == 2
        capture.wait_for_log(r"published end of stream rec: 6 frames, 0 dropped", 5)
    else:
        assert not set(held) & set(seen), "live mode does not send a frame twice"
        assert metrics["redispatched_total"] == 0
        assert metrics["lost_in_flight_total"] == 2
    # w2's last 'done' may still be on its way when the loop above ends.
    wait_for(lambda: metrics_of(capture)["in_flight"] == 0, 5, "nothing in flight")


def http_get_json(url: str) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_a_worker_restarted_under_its_identity_gets_back_what_the_old_one_held(
    tmp_path: Path, start_capture: Callable[..., Capture], ctx: zmq.Context[Any]
) -> None:
    recording = make_recording(tmp_path / "rec", 4)
    # A long timeout: only the new start time can tell capture the old process is gone.
    capture = start_capture(
        "--source", str(recording), "--mode", "lossless", "--pace", "fast",
        "--worker-timeout-s", "60",
    )  # fmt: skip
    capture.wait_for_log(r"capture ready", STARTUP_S)
    old = connect_worker(ctx, capture, "w1")
    old.send_multipart(encode(WorkRequest(worker_id="w1", credit=2, started_at_ns=1)))
    held = [take_frame(old), take_frame(old)]
    old.close(linger=0)
    new = connect_worker(ctx, capture, "w1")
    new.send_multipart(encode(WorkRequest(worker_id="w1", credit=1, started_at_ns=2)))
    seen = []
    for _ in range(4):
        seen.append(take_frame(new))
        new.send_multipart(
            encode(WorkRequest(worker_id="w1", credit=1, done=(seen[-1],), started_at_ns=2))
        )
    assert seen[:2] == held == [0, 1], "the old process's frames first"
    assert seen[2:] == [2, 3]
    capture.wait_for_log(r"worker b'w1' lost \(it restarted\)", 5)
    capture.wait_for_log(r"published end of stream rec: 4 frames, 0 dropped", 5)
    assert metrics_of(capture)["redispatched_total"] == 2
