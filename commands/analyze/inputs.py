"""What ``commands.analyze`` reads: one image, a folder of images, or a video file, frame by
frame, with a clear error for a path that is none of these."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np

from shared.image import ImageU8

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Frame", "InputError", "Inputs", "open_inputs"]

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES: Final = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
#: A video that states no frame rate is timed at this one.
FALLBACK_FPS: Final = 25.0


class InputError(ValueError):
    """The path is missing, or not an image, a folder of images or a video."""


@dataclass(frozen=True)
class Frame:
    """One image or video frame; ``image`` is None (and ``error`` says why) when unreadable."""

    source: str
    index: int
    time_s: float | None
    image: ImageU8 | None
    error: str | None = None


@dataclass(frozen=True)
class Inputs:
    """What a path holds: its kind, a name for the output folder, how many frames (0 when a
    video does not say), the frame rate of a video, and the frames themselves."""

    kind: Literal["image", "folder", "video"]
    name: str
    total: int
    fps: float | None
    frames: Callable[[], Iterator[Frame]]


def _read_image(path: Path, index: int) -> Frame:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return Frame(path.name, index, None, None, "cannot read it as an image")
    return Frame(path.name, index, None, np.asarray(image, dtype=np.uint8))


def _images(paths: list[Path]) -> Callable[[], Iterator[Frame]]:
    def frames() -> Iterator[Frame]:
        for index, path in enumerate(paths):
            yield _read_image(path, index)

    return frames


def _video(path: Path) -> Inputs:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: cannot open it as a video")
        ok, _ = capture.read()
        if not ok:
            raise InputError(f"{path}: a video with no frame that can be read")
        total = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    fps = fps if 0.5 <= fps <= 240.0 else FALLBACK_FPS

    def frames() -> Iterator[Frame]:
        reader = cv2.VideoCapture(str(path))
        try:
            index = 0
            while True:
                ok, image = reader.read()
                if not ok:
                    return
                yield Frame(path.name, index, index / fps, np.asarray(image, dtype=np.uint8))
                index += 1
        finally:
            reader.release()

    return Inputs("video", path.stem, total, fps, frames)


def open_inputs(path: Path) -> Inputs:
    """The frames at ``path``; raises InputError naming what is wrong with it."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError(
                f"{path}: a folder without images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return Inputs("folder", path.name, len(images), None, _images(images))
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return Inputs("image", path.stem, 1, None, _images([path]))
    if suffix in VIDEO_SUFFIXES:
        return _video(path)
    raise InputError(
        f"{path}: not an image or a video (images: {', '.join(sorted(IMAGE_SUFFIXES))}; "
        f"videos: {', '.join(sorted(VIDEO_SUFFIXES))})"
    )
