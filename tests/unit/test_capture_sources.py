"""Capture's frame sources on files made in tmp_path, and the bundled demo recording."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.capture.main import jpeg_of
from services.capture.sources import (
    ImageFolderSource,
    RawFrame,
    RecordingSource,
    SourceError,
    VideoFileSource,
    open_source,
    stream_id_from_name,
)
from shared.image import decode_jpeg, encode_jpeg, jpeg_size_wh
from shared.recording import load_recording

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(30)


def frame_bgr(index: int, size_wh: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A small frame whose mean brightness encodes ``index``."""
    return np.full((size_wh[1], size_wh[0], 3), 20 + 30 * index, np.uint8)


def make_recording(folder: Path, count: int, stream_id: str = "rec") -> Path:
    (folder / "frames").mkdir(parents=True)
    frames = []
    for index in range(count):
        name = f"frames/{index:06d}.jpg"
        (folder / name).write_bytes(encode_jpeg(frame_bgr(index)))
        frames.append({"file": name, "faces": [{"box_xywh": [1, 2, 10, 10], "who": "x"}]})
    recording = {"stream_id": stream_id, "fps": 15.0, "width": 64, "height": 48, "frames": frames}
    (folder / "recording.json").write_text(json.dumps(recording))
    return folder


def test_image_folder_sorted_and_skips_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "my shots"
    folder.mkdir()
    cv2.imwrite(str(folder / "b.png"), frame_bgr(1))
    (folder / "a.jpg").write_bytes(encode_jpeg(frame_bgr(0)))
    (folder / "c.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    cv2.imwrite(str(folder / "d.bmp"), frame_bgr(3, (32, 24)))
    (folder / "notes.txt").write_text("ignored: not an image suffix")

    source = open_source(str(folder), fps=12.0)
    assert isinstance(source, ImageFolderSource)
    assert (source.fps, source.default_stream_id, source.self_paced) == (12.0, "my_shots", False)
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [(f.width, f.height) for f in frames] == [(64, 48), (64, 48), (32, 24)]
    # the JPEG passes through as it is; other formats come as pixels
    assert frames[0].image == (folder / "a.jpg").read_bytes()
    assert isinstance(frames[1].image, np.ndarray)
    assert source.skipped == 1
    assert "c.jpg" in caplog.text
    # a second pass starts over (for loop), counting the corrupt file again
    assert len(list(source.frames())) == 3
    assert source.skipped == 2


def test_empty_image_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images")
    with pytest.raises(SourceError, match="has no images"):
        open_source(str(tmp_path), fps=15.0)


def test_video_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for index in range(5):
        writer.write(frame_bgr(index))
    writer.release()

    source = open_source(str(path), fps=15.0)
    assert isinstance(source, VideoFileSource)
    assert (source.fps, source.default_stream_id) == (10.0, "clip")
    frames = list(source.frames())
    assert len(frames) == 5
    assert all((f.width, f.height) == (64, 48) for f in frames)
    means = [float(np.asarray(f.image).mean()) for f in frames]
    assert means == pytest.approx([20, 50, 80, 110, 140], abs=3)
    assert len(list(source.frames())) == 5  # reopens for a second pass


def test_not_a_video_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match=r"clip\.mp4"):
        open_source(str(path), fps=15.0)


def test_recording_passes_stored_bytes(tmp_path: Path) -> None:
    folder = make_recording(tmp_path / "rec", 3, stream_id="rec-1")
    (folder / "frames/000001.jpg").unlink()  # a missing frame is skipped, not fatal

    source = open_source(str(folder), fps=99.0)
    assert isinstance(source, RecordingSource)
    assert (source.fps, source.default_stream_id) == (15.0, "rec-1")
    frames = list(source.frames())
    assert [f.image for f in frames] == [
        (folder / "frames/000000.jpg").read_bytes(),
        (folder / "frames/000002.jpg").read_bytes(),
    ]
    assert source.skipped == 1


@pytest.mark.parametrize(
    ("recording", "match"),
    [
        ("{not json", "invalid"),
        ('{"stream_id": "a b", "fps": 15, "width": 1, "height": 1, "frames": []}', "stream_id"),
        ('{"stream_id": "a", "fps": 15, "width": 1, "height": 1, "frames": []}', "frames"),
        (
            '{"stream_id": "a", "fps": 15, "width": 1, "height": 1,'
            ' "frames": [{"file": "../../etc/passwd"}]}',
            "inside the recording folder",
        ),
    ],
    ids=["bad-json", "bad-stream-id", "no-frames", "escapes-folder"],
)
def test_bad_recording_is_an_error(tmp_path: Path, recording: str, match: str) -> None:
    (tmp_path / "recording.json").write_text(recording)
    with pytest.raises(SourceError, match=match):
        open_source(str(tmp_path), fps=15.0)


@pytest.mark.parametrize("source", ["/no/such/file.mp4", "no-such-folder"])
def test_missing_source_is_an_error(source: str) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_source(source, fps=15.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cam", "cam"), ("my video (1)", "my_video_1"), ("..", "stream"), ("é" * 80, "stream")],
)
def test_stream_id_from_name(name: str, expected: str) -> None:
    assert stream_id_from_name(name) == expected


def test_jpeg_of_passes_small_jpegs_and_shrinks_big_frames() -> None:
    jpeg = encode_jpeg(frame_bgr(1, (64, 48)))
    assert jpeg_of(RawFrame(jpeg, 64, 48), (64, 48), 80) == (jpeg, 64, 48)
    shrunk, width, height = jpeg_of(RawFrame(jpeg, 64, 48), (32, 32), 80)
    assert (width, height) == (32, 24) == jpeg_size_wh(shrunk)
    pixels = frame_bgr(2, (100, 50))
    encoded, width, height = jpeg_of(RawFrame(pixels, 100, 50), (640, 480), 80)
    assert (width, height) == (100, 50)
    assert decode_jpeg(encoded).shape == (50, 100, 3)


def test_bundled_demo_recording() -> None:
    folder = REPO / "recordings" / "demo"
    recording = load_recording(folder)
    assert (recording.stream_id, recording.fps, recording.width, recording.height) == (
        "demo",
        15.0,
        640,
        480,
    )
    assert 120 <= len(recording.frames) <= 150
    counts = {len(frame.faces) for frame in recording.frames}
    assert counts == {1, 2}
    for frame in recording.frames:
        for face in frame.faces:
            x, y, w, h = face.box_xywh
            assert 80 <= w <= 210
            assert x >= 0 and x + w <= 640 and y >= 0 and y + h <= 480
    assert sum(p.stat().st_size for p in (folder / "frames").iterdir()) <= 4_000_000
    first = (folder / recording.frames[0].file).read_bytes()
    assert jpeg_size_wh(first) == (640, 480)
