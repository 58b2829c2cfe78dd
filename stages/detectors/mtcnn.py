"""MTCNN (the ``mtcnn`` package: P-, R- and O-Net on TensorFlow, weights inside the wheel)."""

from __future__ import annotations

import os
from typing import Any, Final

import cv2
import numpy as np
from pydantic import Field

from shared.image import ImageU8, resize_to_fit

from ..framing import Framing
from .base import DetectedFace, DetectorError, square_box_xywh
from .registry import DetectorConfig, register

__all__ = ["MtcnnDetector"]

#: (scale, shift_y) that turn MTCNN's tall box into the Haar cascade's square one; fitted for
#: the best mean IoU on recordings/demo (see docs/benchmarks.md).
BOX_FIT: Final = (1.05, -0.05)
#: ONet's confidence threshold (the package's default is 0.8): fewer false faces.
MIN_CONFIDENCE: Final = 0.9


def _load_mtcnn() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from mtcnn import MTCNN
    except ImportError as error:
        raise DetectorError(
            "detector 'mtcnn' needs the mtcnn package: pip install -e '.[mtcnn]' "
            f"(import failed: {error})"
        ) from error
    import tensorflow as tf

    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    return MTCNN(stages="face_and_landmarks_detection", device=device)


class MtcnnDetector:
    """MTCNN on an RGB, downscaled copy of the frame; boxes squared like Haar's."""

    def __init__(self, min_face_px: int = 40, detect_max_width: int = 640) -> None:
        if min_face_px < 1 or detect_max_width < 1:
            raise ValueError(
                f"expected min_face_px >= 1 and detect_max_width >= 1, found "
                f"{min_face_px} and {detect_max_width}"
            )
        self._mtcnn = _load_mtcnn()
        self._min_face_px = min_face_px
        self._detect_max_width = detect_max_width

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        height, width = frame_bgr.shape[:2]
        small = frame_bgr
        if width > self._detect_max_width:
            small = resize_to_fit(frame_bgr, (self._detect_max_width, height))
        scale = width / small.shape[1]
        rgb = np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        # The package's own min_face_size (default 20) is left alone: mtcnn 1.0.0 found no face
        # at all on the demo recording with min_face_size=40; small boxes are dropped below.
        found = self._mtcnn.detect_faces(rgb)
        faces: list[DetectedFace] = []
        for face in found:
            if float(face["confidence"]) < MIN_CONFIDENCE:
                continue
            x, y, w, h = (float(v) * scale for v in face["box"])
            box = square_box_xywh((x, y, w, h), *BOX_FIT, (width, height))
            if box is not None and min(box[2], box[3]) >= self._min_face_px:
                faces.append(DetectedFace(box))
        return faces


class MtcnnConfig(DetectorConfig):
    #: Frames wider than this are scaled down before MTCNN runs.
    detect_max_width: int = Field(default=640, ge=160, le=8192)


# Not fitted (MTCNN needs TensorFlow and takes 130 ms a frame): its box as it is.
@register("mtcnn", MtcnnConfig, Framing(), "MTCNN on TensorFlow (the [mtcnn] extra)")
def _mtcnn(config: MtcnnConfig) -> MtcnnDetector:
    return MtcnnDetector(min_face_px=config.min_face_px, detect_max_width=config.detect_max_width)
