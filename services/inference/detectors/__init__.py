"""Face detectors behind one protocol (``FaceDetector``), by the names settings use.

One module per detector: ``haar`` (OpenCV's cascade), ``blazeface`` (MediaPipe's BlazeFace on
LiteRT, short and full range, with ``ssd`` for its box maths) and ``mtcnn`` (on TensorFlow, an
extra). Each imports only ``base``; this registry imports the heavy ones when they are asked for.
"""

from __future__ import annotations

from typing import Final, get_args

from ..settings import DetectorName, FaceSettings
from .base import DetectedFace, DetectorError, FaceDetector, square_box_xywh
from .haar import HaarDetector

__all__ = [
    "DETECTORS",
    "DetectedFace",
    "DetectorError",
    "DetectorName",
    "FaceDetector",
    "HaarDetector",
    "detector_for",
    "make_detector",
    "square_box_xywh",
]

#: Every detector ``make_detector`` builds, in the order of the settings' Literal.
DETECTORS: Final[tuple[str, ...]] = get_args(DetectorName)


def detector_for(settings: FaceSettings) -> FaceDetector:
    """The detector ``settings`` ask for, built with their sizes, threads and full-pass
    interval."""
    return make_detector(
        settings.detector,
        settings.min_face_px,
        settings.detect_max_width,
        settings.tf_threads,
        settings.full_every,
    )


def make_detector(
    name: str, min_face_px: int, detect_max_width: int, threads: int = 0, full_every: int = 10
) -> FaceDetector:
    """The detector called ``name`` in settings (``DETECTORS``).

    ``threads`` bounds the cores BlazeFace uses (0: all; tiled, one single-threaded
    interpreter per core, at most four); MTCNN runs in TensorFlow's own pools
    (``tf_threads``). ``full_every``: frames between the tracking detector's full passes.
    Raises DetectorError when it cannot be built.
    """
    if name == "haar":
        return HaarDetector(min_face_px=min_face_px, detect_max_width=detect_max_width)
    if name == "blazeface_tracking":
        from .blazeface import BlazeFaceDetector
        from .second_look import CANDIDATE_SCORE
        from .tracking import TrackingDetector

        return TrackingDetector(
            BlazeFaceDetector("short", min_face_px=min_face_px, threads=threads, tiled=True),
            BlazeFaceDetector(
                "short",
                min_face_px=min_face_px,
                threads=threads,
                tiled=True,
                second_look=False,
                min_score=CANDIDATE_SCORE,
            ),
            full_every=full_every,
        )
    if name in ("blazeface", "blazeface_single", "blazeface_full"):
        from .blazeface import BlazeFaceDetector

        # Short range sees the whole frame and overlapping tiles (faces from 60 px up), or the
        # whole frame alone (single: faces over about a fifth of the frame, one pass of nine); full
        # range takes the frame in one pass.
        if name == "blazeface_full":
            return BlazeFaceDetector("full", min_face_px=min_face_px, threads=threads)
        tiled = name == "blazeface"
        return BlazeFaceDetector("short", min_face_px=min_face_px, threads=threads, tiled=tiled)
    if name == "mtcnn":
        from .mtcnn import MtcnnDetector

        return MtcnnDetector(min_face_px=min_face_px, detect_max_width=detect_max_width)
    raise DetectorError(f"unknown detector: expected one of {list(DETECTORS)}, found {name!r}")
