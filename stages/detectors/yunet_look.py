"""A last look at the faces BlazeFace is least sure of, by another network: YuNet.

The second look (``second_look``) keeps some candidates that are not faces: textured
backgrounds (brickwork, cells under a microscope) at detector scores of 0.44-0.57, where the
Haar cascade votes as readily as on a face. YuNet (OpenCV Zoo's
``face_detection_yunet_2023mar.onnx``, MIT, 232 KB, run by OpenCV's own
``cv2.FaceDetectorYN``) was trained on other data, with another design, and errs elsewhere:
each kept candidate under ``UNSURE_SCORE`` is shown to it in a square of ``CONTEXT`` x its
side at ``SIZE`` pixels, and stays a face only where YuNet finds one there
(``YUNET_SCORE``, IoU ``YUNET_IOU`` with the candidate's box). Thresholds chosen on shots of
``train/`` faces and checked on three draws of ``test/`` ones (docs/benchmarks.md, "YuNet").
The model file is extracted by ``scripts/extract_detectors.py`` (licence and sha256 beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import BoxXYWH, ImageU8, iou_matrix_xywh

from .base import DetectorError
from .second_look import context_square

__all__ = [
    "CONTEXT",
    "MODEL_PATH",
    "SIZE",
    "UNSURE_SCORE",
    "YuNetLook",
    "open_yunet",
    "yunet_around",
]

MODEL_PATH: Final = (
    Path(__file__).resolve().parents[1] / "assets" / "yunet" / "face_detection_yunet_2023mar.onnx"
)
#: Faces the second look kept with a BlazeFace score under this get YuNet's look; on the
#: bench's scenes 99% of the faces found score 0.5 or more, the false ones 0.44-0.57.
UNSURE_SCORE: Final = 0.6
#: YuNet's lowest score for a face in the look.
YUNET_SCORE: Final = 0.2
#: A face YuNet finds in the look is the candidate where their boxes overlap by this IoU
#: (YuNet's box runs from forehead to chin, a little off the candidate's).
YUNET_IOU: Final = 0.2
#: The look's square: this many times the candidate's side, at this many pixels.
CONTEXT: Final = 2.0
SIZE: Final = 128


def open_yunet(path: Path, size_wh: tuple[int, int], score: float) -> cv2.FaceDetectorYN:
    """OpenCV's YuNet detector on the model at ``path`` for images of ``size_wh``, keeping
    faces from ``score``; raises DetectorError when the file is missing or not a model."""
    if not path.is_file():
        raise DetectorError(f"YuNet model not found: {path} (made by scripts/extract_detectors.py)")
    try:
        return cv2.FaceDetectorYN.create(str(path), "", size_wh, score_threshold=score)
    except cv2.error as error:
        raise DetectorError(f"YuNet model could not be loaded: {path}: {error}") from error


def yunet_around(
    net: cv2.FaceDetectorYN, frame_bgr: ImageU8, box_xywh: BoxXYWH
) -> npt.NDArray[np.float64]:
    """YuNet's rows (N, 15: box, five landmarks, score) on the square of ``CONTEXT`` x the
    box's side around it at ``SIZE`` px (``net`` made for that size), boxes in frame pixels."""
    x, y, w, h = box_xywh
    square, scale, (left, top) = context_square(
        frame_bgr, np.array([x, y, x + w, y + h], np.float64), CONTEXT, SIZE
    )
    _, rows = net.detect(square)
    if rows is None:
        return np.zeros((0, 15), np.float64)
    found = np.asarray(rows, np.float64)
    found[:, :4] = found[:, :4] / scale + [left, top, 0, 0]
    return found


class YuNetLook:
    """``finds(frame, box)``: whether YuNet finds a face on ``box`` in its surroundings.

    Not for two threads at once (the BlazeFace detector calls it under its lock).
    ``looks_taken`` and ``faces_dropped`` count its work."""

    def __init__(self, path: Path = MODEL_PATH) -> None:
        self._net = open_yunet(path, (SIZE, SIZE), YUNET_SCORE)
        self.looks_taken = 0
        self.faces_dropped = 0

    def finds(self, frame_bgr: ImageU8, box_xywh: BoxXYWH) -> bool:
        """Whether YuNet finds a face overlapping ``box_xywh`` (frame pixels) by ``YUNET_IOU``
        in the square of ``CONTEXT`` x its side around it."""
        self.looks_taken += 1
        rows = yunet_around(self._net, frame_bgr, box_xywh)
        found = len(rows) > 0 and bool(
            iou_matrix_xywh([box_xywh], rows[:, :4])[0].max() >= YUNET_IOU
        )
        self.faces_dropped += not found
        return found
