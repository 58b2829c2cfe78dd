"""Display sinks: the video file plays back, JSON lines are whole, the board never blocks."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.display.mjpeg import FrameBoard
from shared.file_sinks import JsonLinesSink, VideoFileSink
from shared.messages import Face, ResultHeader

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_file_opens_lazily_and_finishes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "sub" / f"out{suffix}"
    sink = VideoFileSink(path, fps=10.0)
    assert not path.exists()
    for value in range(5):
        sink.show(np.full((48, 64, 3), value * 40, dtype=np.uint8))
    sink.show(np.zeros((96, 128, 3), dtype=np.uint8))  # another size: scaled to the first
    sink.end_stream()
    sink.show(np.zeros((48, 64, 3), dtype=np.uint8))  # after the end: not written
    sink.close()
    capture = cv2.VideoCapture(str(path))
    try:
        frames = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (48, 64, 3)
            frames += 1
    finally:
        capture.release()
    assert frames == 6 == sink.frames_written


def test_jsonl_one_flushed_line_per_result(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    sink = JsonLinesSink(path)
    face = Face.from_probabilities((1, 2, 3, 4), [0, 0, 0, 1, 0, 0, 0])
    for seq, error in ((0, None), (1, "corrupt JPEG")):
        sink.write(
            ResultHeader(
                stream_id="cam0",
                seq=seq,
                captured_at_ns=5,
                worker_id="w",
                model_version="m",
                faces=(face,) if error is None else (),
                error=error,
                completed_at_ns=6,
            ),
            received_at_ns=7,
        )
        # Flushed per line: readable before the sink is closed.
        assert len(path.read_text().splitlines()) == seq + 1
    sink.close()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["faces"][0]["label"] == "happy" and first["received_at_ns"] == 7
    assert second["error"] == "corrupt JPEG" and second["faces"] == []


def test_frame_board_readers_get_the_newest_and_wake_on_publish_and_close() -> None:
    board = FrameBoard(b"first")
    assert board.latest() == (0, b"first")

    async def scenario() -> list[tuple[int, bytes] | None]:
        seen = [await board.next_newer(0, 0.01)]
        for index in range(5):
            board.publish(f"frame{index}".encode())
        # A reader that fell behind skips straight to the newest frame.
        seen.append(await board.next_newer(0, 0.01))
        # A waiting reader is woken by a publish from another thread, then by the close.
        for wake in (lambda: board.publish(b"frame5"), board.close):
            reader = asyncio.create_task(board.next_newer(board.latest()[0], 10.0))
            await asyncio.sleep(0)  # the reader runs up to its wait
            threading.Thread(target=wake).start()
            seen.append(await asyncio.wait_for(reader, 2.0))
        return seen

    assert asyncio.run(scenario()) == [None, (5, b"frame4"), (6, b"frame5"), None]
