"""The worker loop without TensorFlow: credit, bounded result sends, run() in a thread,
batching across frames and a model swapped in while running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zmq

from services.inference.links import RESULTS_HWM, CaptureLink, ResultSender
from services.inference.main import run
from services.inference.settings import WorkerSettings
from shared.image import ImageU8, SizeHW, encode_jpeg
from shared.labels import NUM_EMOTIONS
from shared.messages import FrameHeader, ResultHeader, WorkRequest
from shared.runtime import Stats
from shared.wire import decode_as, encode
from stages.detectors import DetectedFace
from stages.views import View
from tests.unit.test_inference_batching import BrightnessClassifier

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FixedDetector:
    """One face at a fixed place in every frame."""

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        return [DetectedFace((10, 20, 30, 30))]


class UniformClassifier:
    """Equal probabilities for every face; records the batch sizes it was given."""

    version = "fake-1"
    input_hw: SizeHW = (48, 48)

    def __init__(self) -> None:
        self.batches: list[int] = []

    def classify(
        self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
    ) -> npt.NDArray[np.float32]:
        self.batches.append(len(faces_gray))
        return np.full((len(faces_gray), NUM_EMOTIONS), 1 / NUM_EMOTIONS, np.float32)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _router(ctx: zmq.Context[Any]) -> tuple[zmq.Socket[bytes], str]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    return router, f"tcp://127.0.0.1:{port}"


def _request(router: zmq.Socket[bytes]) -> WorkRequest:
    assert router.poll(2000), "no work request"
    _, *frames = router.recv_multipart()
    return decode_as(frames, WorkRequest)[0]


def test_capture_link_keeps_its_credit_and_asks_again_after_silence(
    ctx: zmq.Context[Any],
) -> None:
    router, endpoint = _router(ctx)
    clock = FakeClock()
    link = CaptureLink(ctx, endpoint, "w1", credit=3, clock=clock)
    try:
        link.start()
        assert _request(router) == WorkRequest(worker_id="w1", credit=3)
        assert link.outstanding == 3
        link.on_message()
        link.on_message()
        assert link.outstanding == 1
        link.top_up()
        assert _request(router).credit == 2
        clock.now += 0.5
        assert not link.resend_if_idle()
        clock.now += 0.6
        assert link.resend_if_idle()
        assert _request(router).credit == 3
        assert not link.resend_if_idle(), "asked twice within a second"
        link.top_up()  # nothing missing: no request
        assert router.poll(200) == 0
    finally:
        link.close()


def test_result_sender_waits_once_then_drops_and_counts(ctx: zmq.Context[Any]) -> None:
    _, endpoint = _router(ctx)  # nobody will ever PULL from this endpoint
    stats = Stats()
    sender = ResultSender(ctx, endpoint, stats)
    stop = threading.Event()
    result = ResultHeader(
        stream_id="s",
        seq=0,
        captured_at_ns=1,
        worker_id="w",
        model_version="m",
        completed_at_ns=2,
    )
    try:
        # Fill the queue to the peer that never connects.
        sent = 0
        while sent < RESULTS_HWM * 2 and sender.send(result, stop):
            sent += 1
        assert stats.get("results_dropped") == 1
        started = time.monotonic()
        assert sender.send(result, stop) is False
        assert time.monotonic() - started < 0.2, "waited again while the display is gone"
        assert stats.get("results_dropped") == 2
    finally:
        sender.close()


def test_run_in_a_thread_answers_every_frame_and_stops(ctx: zmq.Context[Any]) -> None:
    router, capture = _router(ctx)
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    results = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    settings = WorkerSettings(
        worker_id="w1", capture_endpoints=[capture], results_endpoint=results, credit=2
    )
    classifier = UniformClassifier()
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(settings, stop),
        kwargs={"ctx": ctx, "classifier": classifier, "detector": FixedDetector()},
        daemon=True,
    )
    thread.start()
    try:
        assert _request(router).credit == 2
        jpeg = encode_jpeg(np.full((120, 160, 3), 90, np.uint8))
        for seq in range(3):
            header = FrameHeader(
                stream_id="s", seq=seq, captured_at_ns=time.time_ns(), width=160, height=120
            )
            router.send_multipart([b"w1", *encode(header, jpeg)])
        router.send_multipart([b"w1", b"garbage", b""])
        seqs = []
        for _ in range(3):
            assert pull.poll(5000)
            result, _ = decode_as(pull.recv_multipart(), ResultHeader)
            assert result.model_version == "fake-1"
            assert [face.box_xywh for face in result.faces] == [(10, 20, 30, 30)]
            seqs.append(result.seq)
        assert sorted(seqs) == [0, 1, 2]
        assert classifier.batches[-3:] == [1, 1, 1]
        assert pull.poll(300) == 0, "a result for the garbage message"
    finally:
        started = time.monotonic()
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 1.0


class CountByBrightness:
    """0, 1 or 3 faces by the frame's gray level (30, 90, 150), side by side at the left."""

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        count = {30: 0, 90: 1, 150: 3}[int(round(float(frame_bgr.mean()) / 30) * 30)]
        return [DetectedFace((10 + 50 * i, 10, 40, 40)) for i in range(count)]


def _pull(ctx: zmq.Context[Any]) -> tuple[zmq.Socket[bytes], str]:
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    return pull, f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"


def _frame(stream_id: str, seq: int, level: int) -> list[bytes]:
    header = FrameHeader(
        stream_id=stream_id, seq=seq, captured_at_ns=time.time_ns(), width=160, height=120
    )
    return encode(header, encode_jpeg(np.full((120, 160, 3), level, np.uint8), quality=95))


def _start(settings: WorkerSettings, stop: threading.Event, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=run, args=(settings, stop), kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def test_frames_within_the_wait_share_one_classify_call(ctx: zmq.Context[Any]) -> None:
    router, capture = _router(ctx)
    pull, results = _pull(ctx)
    settings = WorkerSettings(
        worker_id="w1",
        capture_endpoints=[capture],
        results_endpoint=results,
        credit=3,
        max_batch_wait_ms=100,
        smoothing=0.0,
        reload_check_s=0,
    )
    classifier = BrightnessClassifier()
    stop = threading.Event()
    thread = _start(settings, stop, ctx=ctx, classifier=classifier, detector=CountByBrightness())
    try:
        assert _request(router).credit == 3
        sent = {("a", 0): 150, ("b", 0): 30, ("b", 1): 90}
        for (stream_id, seq), level in sent.items():
            router.send_multipart([b"w1", *_frame(stream_id, seq, level)])
        got = {}
        for _ in sent:
            assert pull.poll(5000)
            result, _ = decode_as(pull.recv_multipart(), ResultHeader)
            got[(result.stream_id, result.seq)] = result
        assert set(got) == set(sent)
        assert classifier.batches == [4], "the three frames were not classified together"
        for key, level in sent.items():
            faces = got[key].faces
            assert len(faces) == {30: 0, 90: 1, 150: 3}[level]
            for face in faces:
                assert face.probabilities[0] == pytest.approx(level / 255, abs=0.02)
                assert face.track_id is not None
        assert got[("a", 0)].timings.classify_ms > 0
        assert got[("b", 0)].timings.classify_ms == 0
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


class NamedClassifier(UniformClassifier):
    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version


def test_a_new_model_file_is_swapped_in_between_frames(
    ctx: zmq.Context[Any], tmp_path: Path
) -> None:
    router, capture = _router(ctx)
    pull, results = _pull(ctx)
    model = tmp_path / "m.keras"
    model.write_bytes(b"v1")
    settings = WorkerSettings(
        worker_id="w1",
        capture_endpoints=[capture],
        results_endpoint=results,
        credit=1,
        model_path=model,
        reload_check_s=0.05,
    )
    loads: list[str] = []

    def load(path: Path) -> NamedClassifier:
        content = path.read_bytes().decode()
        loads.append(content)
        if content == "bad":
            raise ValueError("refused")
        return NamedClassifier(content)

    stop = threading.Event()
    thread = _start(
        settings,
        stop,
        ctx=ctx,
        classifier=NamedClassifier("v1"),
        detector=FixedDetector(),
        load_classifier=load,
    )

    def version_of_next(seq: int) -> str:
        router.send_multipart([b"w1", *_frame("s", seq, 90)])
        assert pull.poll(5000)
        result, _ = decode_as(pull.recv_multipart(), ResultHeader)
        assert _request(router).credit == 1
        return result.model_version

    try:
        assert _request(router).credit == 1
        assert version_of_next(0) == "v1"
        replacement = tmp_path / "new"
        replacement.write_bytes(b"v2")
        replacement.replace(model)
        seq, deadline = 1, time.monotonic() + 5
        while version_of_next(seq) != "v2":
            assert time.monotonic() < deadline, "the new model never came into use"
            seq += 1
        replacement.write_bytes(b"bad")
        replacement.replace(model)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            seq += 1
            assert version_of_next(seq) == "v2"
        assert loads == ["v2", "bad"]
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
