"""The inference worker as a real process between a fake capture (ROUTER) and display (PULL)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from shared.image import encode_jpeg, iou_xywh
from shared.labels import EMOTIONS
from shared.messages import FrameHeader, Heartbeat, ResultHeader, WorkRequest
from shared.model_file import read_metadata, write_model_files
from shared.wire import MAX_PAYLOAD_BYTES, WireError, decode, decode_as, encode
from tests.conftest import ASTRONAUT_FACE_XYWH, TINY_METADATA, copy_model, write_tiny_model
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
WORKER_ID = "test-worker"
#: TensorFlow's import and the warm-up take ~5 s idle, much longer on a busy 2-core machine.
STARTUP_S = 120.0


@dataclass
class Worker:
    """A running worker process and the two fake peers it talks to."""

    proc: subprocess.Popen[bytes]
    router: zmq.Socket[bytes]
    pull: zmq.Socket[bytes]
    log_path: Path
    first_request: WorkRequest

    def send_frame(
        self, seq: int, jpeg: bytes, size_wh: tuple[int, int] = (512, 512), stream_id: str = "test"
    ) -> None:
        header = FrameHeader(
            stream_id=stream_id,
            seq=seq,
            captured_at_ns=time.time_ns(),
            width=size_wh[0],
            height=size_wh[1],
        )
        self.send_raw(encode(header, jpeg))

    def send_raw(self, frames: list[bytes]) -> None:
        # ROUTER_MANDATORY is set: retry while the worker is (re)connecting.
        def sent() -> bool:
            try:
                self.router.send_multipart([WORKER_ID.encode(), *frames])
            except zmq.ZMQError as error:
                if error.errno != zmq.EHOSTUNREACH:
                    raise
                return False
            return True

        wait_for(sent, 10, "the worker to connect")

    def result(self, timeout_s: float = 30.0) -> ResultHeader:
        if not self.pull.poll(int(timeout_s * 1000)):
            raise AssertionError(f"no result within {timeout_s} s; log:\n{self.log()}")
        message, _ = decode_as(self.pull.recv_multipart(), ResultHeader)
        return message

    def requests(self, within_s: float) -> list[WorkRequest]:
        """Every work request that arrives within ``within_s`` (heartbeats skipped)."""
        found = []
        deadline = time.monotonic() + within_s
        while (left := deadline - time.monotonic()) > 0:
            if not self.router.poll(int(left * 1000) + 1):
                break
            identity, *frames = self.router.recv_multipart()
            assert identity == WORKER_ID.encode()
            request, _ = decode(frames)
            if isinstance(request, WorkRequest):
                found.append(request)
            else:
                assert isinstance(request, Heartbeat), request
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _worker_command(model: Path, capture: str, results: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "services.inference",
        "--capture-endpoints",
        capture,
        "--results-endpoint",
        results,
        "--model-path",
        str(model),
        "--worker-id",
        WORKER_ID,
        "--tf-threads",
        "1",
        "--stats-interval-s",
        "1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def _running_worker(model: Path, log_path: Path, *extra: str) -> Iterator[Worker]:
    """A worker process on ``model`` between a fake capture and display, killed afterwards."""
    ctx: zmq.Context[Any] = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    capture_port = router.bind_to_random_port("tcp://127.0.0.1")
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    results_port = pull.bind_to_random_port("tcp://127.0.0.1")
    command = _worker_command(
        model,
        f"tcp://127.0.0.1:{capture_port}",
        f"tcp://127.0.0.1:{results_port}",
    )
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*command, *extra], cwd=ROOT, env=_env(), stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        if not router.poll(int(STARTUP_S * 1000)):
            raise AssertionError(f"worker sent no work request; log:\n{log_path.read_text()}")
        identity, *frames = router.recv_multipart()
        assert identity == WORKER_ID.encode()
        first, _ = decode_as(frames, WorkRequest)
        yield Worker(proc, router, pull, log_path, first)
    finally:
        _stop(proc)
        ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def worker(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with _running_worker(tiny_model_path, log_path) as running:
        yield running


def test_asks_for_its_credit_at_start(worker: Worker) -> None:
    first = worker.first_request
    assert (first.worker_id, first.credit, first.done) == (WORKER_ID, 2, ())
    assert first.started_at_ns > 0, "says when it started, so capture can tell a restart"


def test_one_result_per_frame_with_the_face_found(
    worker: Worker, astronaut_bgr: np.ndarray, tiny_model_path: Path
) -> None:
    blank = encode_jpeg(np.full((480, 640, 3), 128, np.uint8))
    worker.send_frame(0, encode_jpeg(astronaut_bgr, quality=90))
    worker.send_frame(1, b"\xff\xd8" + b"not really a jpeg" * 10)
    worker.send_frame(2, blank, size_wh=(640, 480))
    results = {result.seq: result for result in (worker.result() for _ in range(3))}
    assert sorted(results) == [0, 1, 2]
    assert worker.pull.poll(500) == 0, "more than one result per frame"

    face_frame, corrupt, empty = results[0], results[1], results[2]
    version = read_metadata(tiny_model_path).version
    for result in results.values():
        assert result.stream_id == "test"
        assert result.worker_id == WORKER_ID
        assert result.model_version == version
        assert result.completed_at_ns >= result.captured_at_ns
    assert face_frame.error is None
    assert len(face_frame.faces) == 1
    face = face_frame.faces[0]
    assert iou_xywh(face.box_xywh, ASTRONAUT_FACE_XYWH) > 0.6, face.box_xywh
    assert face.label in EMOTIONS
    assert sum(face.probabilities) == pytest.approx(1.0, abs=1e-4)
    timings = face_frame.timings
    assert timings.decode_ms > 0 and timings.detect_ms > 0 and timings.classify_ms > 0
    assert timings.total_ms >= timings.decode_ms + timings.detect_ms + timings.classify_ms

    assert corrupt.faces == ()
    assert corrupt.error is not None and corrupt.error.startswith("corrupt jpeg:")
    assert empty.faces == () and empty.error is None
    # Every frame is answered by a request for one more, which says the frame is done.
    requests = worker.requests(1.0)
    assert sum(request.credit for request in requests) >= 3
    assert {seq for request in requests for seq in request.done} == {0, 1, 2}


def test_a_followed_face_keeps_its_probabilities_between_two_looks(
    worker: Worker, astronaut_bgr: np.ndarray
) -> None:
    """--classify-every 2 (the default): the tracking detector follows the face, which the
    network sees at its first frame and every second one; in between the result carries the
    track's smoothed probabilities, unchanged."""
    for seq in range(4):  # the face moves by 3 px a frame, so each crop differs a little
        moved = np.roll(astronaut_bgr, 3 * seq, axis=1)
        worker.send_frame(seq, encode_jpeg(moved, quality=90), stream_id="followed")
    results = sorted((worker.result() for _ in range(4)), key=lambda result: result.seq)
    assert [len(result.faces) for result in results] == [1, 1, 1, 1]
    rows = [np.array(result.faces[0].probabilities) for result in results]
    np.testing.assert_allclose(rows[1], rows[0], atol=1e-6)
    np.testing.assert_allclose(rows[3], rows[2], atol=1e-6)
    assert np.abs(rows[2] - rows[1]).max() > 1e-4, "the face was not seen again at frame 2"
    assert [result.faces[0].track_id for result in results] == [results[0].faces[0].track_id] * 4


@pytest.mark.parametrize("detector", ["blazeface", "blazeface_full", "mtcnn"])
def test_other_detectors_find_the_face_in_the_worker(
    detector: str, astronaut_bgr: np.ndarray, tiny_model_path: Path, tmp_path: Path
) -> None:
    if detector == "mtcnn" and importlib.util.find_spec("mtcnn") is None:
        pytest.skip("needs the [mtcnn] extra")
    with _running_worker(
        tiny_model_path, tmp_path / "worker.log", "--detector", detector
    ) as running:
        running.send_frame(0, encode_jpeg(astronaut_bgr, quality=90))
        result = running.result()
    assert result.error is None
    assert len(result.faces) == 1, result.faces
    assert iou_xywh(result.faces[0].box_xywh, ASTRONAUT_FACE_XYWH) >= 0.5
    assert f"detector {detector}" in running.log()


def test_malformed_messages_do_not_kill_it(worker: Worker, astronaut_bgr: np.ndarray) -> None:
    huge_header = msgpack.packb({"kind": "frame", "pad": "x" * 200_000})
    wrong_kind = encode(WorkRequest(worker_id="someone", credit=1))
    for frames in ([b"garbage", b""], [b"one frame only"], wrong_kind, [huge_header, b"jpeg"]):
        with pytest.raises(WireError):
            decode_as(frames, FrameHeader)
        worker.send_raw(frames)
    worker.send_frame(10, encode_jpeg(astronaut_bgr))
    assert worker.result().seq == 10
    # Each malformed message used a credit the worker asks for again (4), plus the frame (1).
    assert sum(request.credit for request in worker.requests(1.0)) >= 5

    # A payload bigger than the wire format allows is refused like any malformed message.
    header = FrameHeader(stream_id="test", seq=11, captured_at_ns=1, width=8, height=8)
    worker.send_raw([encode(header, b"\xff\xd8")[0], b"\0" * (MAX_PAYLOAD_BYTES + 1)])
    assert sum(request.credit for request in worker.requests(1.5)) >= 1
    worker.send_frame(12, encode_jpeg(astronaut_bgr))
    assert worker.result().seq == 12
    assert worker.pull.poll(300) == 0, "a result for a malformed message"
    assert worker.proc.poll() is None


def test_sigterm_exits_zero_within_a_second(worker: Worker) -> None:
    assert worker.proc.poll() is None
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    returncode = worker.proc.wait(timeout=10)
    elapsed = time.monotonic() - started
    log = worker.log()
    assert returncode == 0, log
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert "Traceback" not in log
    assert "malformed message from" in log
    assert "corrupt jpeg:" in log
    assert "fps_in=" in log and "drops=" in log


def test_missing_model_file_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "no_model.keras"
    result = subprocess.run(
        _worker_command(missing, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"model file not found: {missing}" in result.stderr
    assert "Traceback" not in result.stderr


# Seconds after the start at which SIGTERM lands: the interpreter's own start-up (before our
# handlers: the default action ends it), the imports, the detector and model load, and running.
@pytest.mark.parametrize("delay_s", [0.05, 0.2, 0.35, 0.5, 0.8, 1.5])
def test_sigterm_at_any_point_of_startup_stops_within_a_second(
    tiny_model_path: Path, delay_s: float
) -> None:
    proc = subprocess.Popen(
        _worker_command(tiny_model_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(delay_s)  # deliberate: the moment of start-up under test
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
        assert "Traceback" not in stderr, stderr
        if "inference[" in stderr:  # our handlers were in place: a clean stop, said in the log
            assert returncode == 0, stderr
            assert "during start-up, stopping" in stderr or "stopping: " in stderr, stderr
        else:
            assert returncode in (0, -signal.SIGTERM), stderr
    finally:
        _stop(proc)


def test_a_cpu_worker_never_imports_tensorflow(tiny_model_path: Path, tmp_path: Path) -> None:
    with _running_worker(tiny_model_path, tmp_path / "worker.log") as running:
        pid = running.proc.pid
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "_pywrap_tensorflow" not in maps and "libtensorflow" not in maps
        assert "through LiteRT" in running.log()


def test_a_new_model_file_is_picked_up_and_a_bad_one_refused(
    tiny_model_path: Path, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    model = copy_model(tiny_model_path, tmp_path / "emotion_model.keras")
    first = read_metadata(model).version
    jpeg = encode_jpeg(astronaut_bgr, quality=90)
    with _running_worker(model, tmp_path / "worker.log", "--reload-check-s", "0.2") as running:
        seq = 0

        def next_result() -> ResultHeader:
            nonlocal seq
            running.send_frame(seq, jpeg)
            seq += 1
            return running.result()

        assert next_result().model_version == first
        # Training writes a new model (another seed, so another hash and version) in place.
        second = read_metadata(write_tiny_model(model, seed=1)).version
        assert second != first
        deadline = time.monotonic() + 60
        while (result := next_result()).model_version != second:
            assert result.model_version == first
            assert time.monotonic() < deadline, f"never reloaded; log:\n{running.log()}"
        assert len(result.faces) == 1
        assert f"model reloaded: {first} -> {second}" in running.log()

        # Model files of garbage whose metadata hashes match: loads fail, the old model stays.
        def write_garbage(path: Path) -> None:
            path.write_bytes(b"not a model")

        write_model_files(model, write_garbage, TINY_METADATA, tflite=(b"not a model", "float32"))
        deadline = time.monotonic() + 60
        while "model reload refused" not in running.log():
            assert next_result().model_version == second
            assert time.monotonic() < deadline, f"bad file not noticed; log:\n{running.log()}"
        # Two seconds of checks (every 0.2 s) of the same bad file, frames flowing meanwhile.
        watched_until = time.monotonic() + 2.0
        while time.monotonic() < watched_until:
            assert next_result().model_version == second
        log = running.log()
        refusals = [line for line in log.splitlines() if "model reload refused" in line]
        assert len(refusals) == 1, refusals
        assert "WARNING" in refusals[0] and str(model) in refusals[0]
        assert "cannot load model file" in refusals[0]
        assert "reload_failed=1" in log
        assert running.proc.poll() is None
        assert "Traceback" not in log
