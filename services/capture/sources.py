"""Frame sources behind one protocol: webcam, video file, image folder and recording."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple, Protocol

import cv2
import numpy as np

from shared.image import ImageError, ImageU8, jpeg_size_wh
from shared.recording import RECORDING_FILE, load_recording

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameSource",
    "ImageFolderSource",
    "RawFrame",
    "RecordingSource",
    "SourceError",
    "VideoFileSource",
    "WebcamSource",
    "open_source",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Frame rate assumed for a webcam that does not report one (only used for logging).
DEFAULT_WEBCAM_FPS: Final = 30.0


class SourceError(RuntimeError):
    """The source cannot be opened as configured (missing file, bad webcam index, no frames)."""


class RawFrame(NamedTuple):
    """One frame as the source has it: JPEG bytes to pass on as they are, or BGR pixels."""

    image: bytes | ImageU8
    width: int
    height: int


class FrameSource(Protocol):
    """What the capture loop needs from a source."""

    @property
    def fps(self) -> float:
        """Nominal frames per second."""

    @property
    def default_stream_id(self) -> str:
        """Stream id to use when the settings give none."""

    @property
    def self_paced(self) -> bool:
        """True when reading blocks until the device has a frame (a camera): never sleep."""

    @property
    def skipped(self) -> int:
        """Frames skipped so far because they could not be read."""

    def frames(self) -> Iterator[RawFrame]:
        """The frames from the start; a second call starts over (for ``loop``)."""

    def close(self) -> None:
        """Release the device or files."""


def stream_id_from_name(name: str) -> str:
    """A valid stream id made from a file or folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")[:64]
    return cleaned or "stream"


def _usable_fps(value: float, fallback: float) -> float:
    return value if math.isfinite(value) and 0.0 < value <= 240.0 else fallback


class WebcamSource:
    """A camera, ``cv2.VideoCapture(index)``; ends only when the camera stops delivering."""

    self_paced = True

    def __init__(self, index: int) -> None:
        self._index = index
        self._capture = cv2.VideoCapture(index)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open webcam {index}: no camera at that index")
        self.fps = _usable_fps(float(self._capture.get(cv2.CAP_PROP_FPS)), DEFAULT_WEBCAM_FPS)
        self.default_stream_id = f"cam{index}"
        self.skipped = 0

    def frames(self) -> Iterator[RawFrame]:
        while True:
            ok, frame_bgr = self._capture.read()
            if not ok or frame_bgr is None:
                log.error("webcam %d stopped delivering frames", self._index)
                return
            yield RawFrame(np.asarray(frame_bgr, np.uint8), frame_bgr.shape[1], frame_bgr.shape[0])

    def close(self) -> None:
        self._capture.release()


class VideoFileSource:
    """A video file, ``cv2.VideoCapture(path)``; each ``frames()`` call reopens it."""

    self_paced = False

    def __init__(self, path: Path, fallback_fps: float) -> None:
        self._path = path
        capture = self._open()
        try:
            ok, _ = capture.read()
            if not ok:
                raise SourceError(f"cannot read video file {path}: it has no decodable frames")
            self.fps = _usable_fps(float(capture.get(cv2.CAP_PROP_FPS)), fallback_fps)
        finally:
            capture.release()
        self.default_stream_id = stream_id_from_name(path.stem)
        self.skipped = 0

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self._path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video file {self._path}: not a video OpenCV can read")
        return capture

    def frames(self) -> Iterator[RawFrame]:
        capture = self._open()
        try:
            while True:
                ok, frame_bgr = capture.read()
                if not ok or frame_bgr is None:
                    return
                yield RawFrame(
                    np.asarray(frame_bgr, np.uint8), frame_bgr.shape[1], frame_bgr.shape[0]
                )
        finally:
            capture.release()

    def close(self) -> None:
        """Nothing held between ``frames()`` calls."""


class ImageFolderSource:
    """Images in a folder, sorted by name; unreadable ones are logged, counted and skipped."""

    self_paced = False

    def __init__(self, folder: Path, fps: float) -> None:
        self._paths = sorted(
            path
            for path in folder.iterdir()
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self._paths:
            raise SourceError(
                f"image folder {folder} has no images: expected files ending in "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}"
            )
        self.fps = fps
        self.default_stream_id = stream_id_from_name(folder.resolve().name)
        self.skipped = 0

    def _skip(self, path: Path, why: str) -> None:
        self.skipped += 1
        log.warning("skipping image %s: %s (%d skipped so far)", path, why, self.skipped)

    def frames(self) -> Iterator[RawFrame]:
        for path in self._paths:
            try:
                data = path.read_bytes()
            except OSError as error:
                self._skip(path, error.strerror or str(error))
                continue
            frame_bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if frame_bgr is None:
                self._skip(path, "not an image OpenCV can decode")
                continue
            height, width = frame_bgr.shape[:2]
            # A JPEG goes on as it is: re-encoding would only lose quality and time.
            image = data if data[:2] == b"\xff\xd8" else np.asarray(frame_bgr, np.uint8)
            yield RawFrame(image, width, height)

    def close(self) -> None:
        """Nothing held open."""


class RecordingSource:
    """A recording folder: the stored JPEG bytes are published as they are, never re-encoded."""

    self_paced = False

    def __init__(self, folder: Path) -> None:
        try:
            self._recording = load_recording(folder)
        except ValueError as error:
            raise SourceError(f"cannot open recording: {error}") from error
        self._folder = folder
        self.fps = self._recording.fps
        self.default_stream_id = self._recording.stream_id
        self.skipped = 0

    def frames(self) -> Iterator[RawFrame]:
        for frame in self._recording.frames:
            path = self._folder / frame.file
            try:
                data = path.read_bytes()
                width, height = jpeg_size_wh(data)
            except (OSError, ImageError) as error:
                self.skipped += 1
                why = error.strerror if isinstance(error, OSError) else str(error)
                log.warning("skipping frame %s: %s (%d skipped so far)", path, why, self.skipped)
                continue
            yield RawFrame(data, width, height)

    def close(self) -> None:
        """Nothing held open."""


def open_source(source: str, fps: float) -> FrameSource:
    """Open what ``source`` names; raises SourceError saying what was expected and found."""
    text = source.strip()
    if re.fullmatch(r"\d+", text):
        return WebcamSource(int(text))
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / RECORDING_FILE).is_file():
            return RecordingSource(path)
        return ImageFolderSource(path, fps)
    if path.is_file():
        return VideoFileSource(path, fps)
    raise SourceError(
        f"source {source!r} not found: expected a webcam index, a video file, an image folder "
        f"or a recording folder"
    )
