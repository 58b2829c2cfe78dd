"""OpenCV's frontal-face Haar cascade."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import cv2
import numpy as np
from pydantic import Field

from shared.image import ImageU8, clip_box_xywh, resize_to_fit, to_gray

from ..framing import Framing
from .base import DetectedFace, DetectorError
from .registry import DetectorConfig, register

__all__ = ["HAAR_CASCADE", "HaarDetector", "load_cascade"]

HAAR_CASCADE: Final = "haarcascade_frontalface_default.xml"


def _cascade_path() -> Path:
    # OpenCV 5 wheels ship no cascades; pyproject pins opencv-python<5 for this file.
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        raise DetectorError(
            "OpenCV ships no Haar cascades here (cv2.data.haarcascades is missing); "
            "install opencv-python<5 as pinned in pyproject.toml"
        )
    return Path(folder) / HAAR_CASCADE


def load_cascade(path: Path | None = None) -> cv2.CascadeClassifier:
    """The frontal-face cascade (OpenCV's own unless ``path``); DetectorError if it cannot be
    read."""
    path = path or _cascade_path()
    if not path.is_file():
        raise DetectorError(
            f"Haar cascade not found: {path} (expected in opencv-python<5's cv2/data)"
        )
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise DetectorError(f"Haar cascade could not be loaded: {path}")
    return cascade


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a grayscale, downscaled copy."""

    def __init__(
        self,
        min_face_px: int = 40,
        detect_max_width: int = 640,
        scale_factor: float = 1.1,
        min_neighbors: int = 6,
        cascade_path: Path | None = None,
    ) -> None:
        cascade = load_cascade(cascade_path)
        if min_face_px < 1 or detect_max_width < 1:
            raise ValueError(
                f"expected min_face_px >= 1 and detect_max_width >= 1, found "
                f"{min_face_px} and {detect_max_width}"
            )
        self._cascade = cascade
        self._min_face_px = min_face_px
        self._detect_max_width = detect_max_width
        # minNeighbors 6 (OpenCV's default is 3): a missed face costs one frame, a false face
        # puts an emoji on a curtain in every frame.
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        height, width = frame_bgr.shape[:2]
        gray = to_gray(frame_bgr)
        if width > self._detect_max_width:
            gray = resize_to_fit(gray, (self._detect_max_width, height))
        scale = width / gray.shape[1]
        min_side = max(1, round(self._min_face_px / scale))
        # No histogram equalisation: on the demo recording it added 29 false faces in 135
        # frames (on a space suit) for no face gained.
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(min_side, min_side),
        )
        faces: list[DetectedFace] = []
        for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4).tolist():
            full = (round(x * scale), round(y * scale), round(w * scale), round(h * scale))
            clipped = clip_box_xywh(full, (width, height))
            if clipped is not None:
                faces.append(DetectedFace(clipped))
        return faces


class HaarConfig(DetectorConfig):
    #: Frames wider than this are scaled down before the cascade runs.
    detect_max_width: int = Field(default=640, ge=160, le=8192)


@register("haar", HaarConfig, Framing(1.05, 0.0, 0.0), "OpenCV's frontal-face cascade")
def _haar(config: HaarConfig) -> HaarDetector:
    return HaarDetector(min_face_px=config.min_face_px, detect_max_width=config.detect_max_width)
