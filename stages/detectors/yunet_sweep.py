"""YuNet on the whole frame, for the faces BlazeFace's full pass does not find at all.

The two networks miss different faces. On moving head-and-shoulders shots the tiled BlazeFace
pass misses a few faces shot after shot (a face it never scores as one, whatever its size or
place), and YuNet (OpenCV Zoo's ``face_detection_yunet_2023mar.onnx``, run by OpenCV's own
``cv2.FaceDetectorYN``) finds many of those on the whole frame, at the cost of one more network
pass of about 10 ms a 640x480 frame (docs/benchmarks.md, "YuNet's sweep"). A face it finds from
``SWEEP_SCORE`` where the pass found none becomes a face of the pass, its box brought to the
box BlazeFace's fit gives (``YUNET_BOX_FIT``), so that one ``Framing`` serves both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np

from shared.image import BoxXYWH, ImageU8, iou_matrix_xywh, shrink

from .base import DetectedFace, square_box_xywh
from .ssd import NESTED_INSIDE, NMS_IOU, outside_stronger
from .yunet_look import MODEL_PATH, SIZE, open_yunet, yunet_around

__all__ = [
    "SWEEP_EVERY",
    "SWEEP_SCORE",
    "SWEEP_WIDTH",
    "YUNET_BOX_FIT",
    "SweptFace",
    "YuNetSweep",
    "add_swept",
]

#: The detectors sweep one full pass in this many (and the tracker a stream's first and one
#: after each cut; docs/benchmarks.md, "YuNet's sweep").
SWEEP_EVERY: Final = 3
#: YuNet's lowest score for a face the sweep adds (docs/benchmarks.md, "YuNet's sweep").
SWEEP_SCORE: Final = 0.8
#: Frames wider than this are swept at this width (YuNet's time grows with the area).
SWEEP_WIDTH: Final = 640
#: YuNet's box (forehead to chin, not square) -> the square box the BlazeFace detectors report:
#: side x 0.98 of its mean side, centre 0.063 of that side higher (``square_box_xywh``); the
#: medians over 540 faces both found on train/ scenes (docs/benchmarks.md, "YuNet's sweep").
YUNET_BOX_FIT: Final = (0.98, -0.063)


class SweptFace(NamedTuple):
    """A face YuNet found: as the BlazeFace detectors box it, and YuNet's score."""

    face: DetectedFace
    score: float


class YuNetSweep:
    """``faces(frame)``: the faces YuNet finds on the whole frame, boxed as BlazeFace's fit
    boxes them; ``find_again(frame, box)``: the face it finds around a box, for following a
    face BlazeFace does not find. Not for two threads at once (the detectors call it under
    their lock). ``sweeps``, ``faces_added`` and ``found_again`` count its work."""

    def __init__(
        self, path: Path = MODEL_PATH, score: float = SWEEP_SCORE, width: int = SWEEP_WIDTH
    ) -> None:
        self._width = width
        self._net = open_yunet(path, (width, width * 3 // 4), score)
        # A face is looked for again as YuNet's look at the unsure faces looks (``yunet_look``).
        self._near = open_yunet(path, (SIZE, SIZE), score)
        self.sweeps = 0
        self.faces_added = 0
        self.found_again = 0

    def faces(self, frame_bgr: ImageU8, min_face_px: int) -> list[SweptFace]:
        """YuNet's faces in ``frame_bgr`` from its score threshold, at least ``min_face_px``
        on a side once boxed, strongest first."""
        self.sweeps += 1
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, self._width / width)
        size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = frame_bgr if scale == 1.0 else shrink(frame_bgr, size_wh)
        self._net.setInputSize(size_wh)
        _, rows = self._net.detect(image)
        if rows is None:
            return []
        out = []
        for row in sorted(np.asarray(rows, np.float64), key=lambda r: -r[14]):
            x, y, w, h = (float(v) / scale for v in row[:4])
            box = square_box_xywh((x, y, w, h), *YUNET_BOX_FIT, (width, height))
            if box is None or min(box[2], box[3]) < min_face_px:
                continue
            # No roll: YuNet's eye landmarks stay level on a face turned 15 or 30 degrees in
            # the picture (the astronaut's, where BlazeFace's eyes turn with her).
            out.append(SweptFace(DetectedFace(box), float(row[14])))
        return out

    def find_again(self, frame_bgr: ImageU8, box_xywh: BoxXYWH, min_iou: float) -> SweptFace | None:
        """The face YuNet finds in the square around the box (``yunet_around``) that overlaps
        the box most, by ``min_iou`` or more; None where there is none."""
        height, width = frame_bgr.shape[:2]
        best: SweptFace | None = None
        best_iou = min_iou
        for row in yunet_around(self._near, frame_bgr, box_xywh):
            x, y, w, h = (float(v) for v in row[:4])
            face_box = square_box_xywh((x, y, w, h), *YUNET_BOX_FIT, (width, height))
            if face_box is None:
                continue
            overlap = float(iou_matrix_xywh([box_xywh], [face_box])[0, 0])
            if overlap >= best_iou:
                best, best_iou = SweptFace(DetectedFace(face_box), float(row[14])), overlap
        self.found_again += best is not None
        return best


def add_swept(
    sweep: YuNetSweep, frame_bgr: ImageU8, faces: list[DetectedFace], min_face_px: int
) -> list[DetectedFace]:
    """``faces`` and the faces the sweep finds where none of them is: overlapping none by
    ``NMS_IOU`` and sharing under ``NESTED_INSIDE`` of the smaller box's area with each (nor
    with one another)."""
    out = list(faces)
    for swept in sweep.faces(frame_bgr, min_face_px):
        if _apart(swept.face.box_xywh, [face.box_xywh for face in out]):
            out.append(swept.face)
            sweep.faces_added += 1
    return out


def _apart(box_xywh: BoxXYWH, others_xywh: Sequence[BoxXYWH]) -> bool:
    """The pass's own two rules against ``others_xywh`` (faces it keeps): no IoU of
    ``NMS_IOU``, and not nested (``ssd.outside_stronger``, the others as the stronger)."""
    if not others_xywh:
        return True
    if iou_matrix_xywh([box_xywh], others_xywh)[0].max() >= NMS_IOU:
        return False
    corners = [(x, y, x + w, y + h) for x, y, w, h in [*others_xywh, box_xywh]]
    return bool(outside_stronger(corners, NESTED_INSIDE)[-1])
