"""Face detectors behind one protocol (``FaceDetector``), as plugins registered by name.

Each detector module registers a builder with its own pydantic config and fitted framing
(``registry``): ``haar`` (OpenCV's cascade), the BlazeFace family (``blazeface_variants``, on
MediaPipe's networks in ``blazeface`` with ``ssd`` for its box maths, ``second_look`` for the
second look and ``tracking`` for ``blazeface_tracking``) and ``mtcnn`` (on TensorFlow, an
extra). Modules import their heavy dependencies only when a detector is built.
"""

from __future__ import annotations

from .base import DetectedFace, DetectorError, FaceDetector, square_box_xywh
from .haar import HaarDetector
from .registry import (
    DetectorConfig,
    build_detector,
    detector_for,
    detector_names,
    framing_for,
    plugin,
    register,
)

__all__ = [
    "DetectedFace",
    "DetectorConfig",
    "DetectorError",
    "FaceDetector",
    "HaarDetector",
    "build_detector",
    "detector_for",
    "detector_names",
    "framing_for",
    "plugin",
    "register",
    "square_box_xywh",
]
