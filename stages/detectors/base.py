"""What every face detector is: a BGR frame in, face boxes in full-frame pixels out."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from shared.image import BoxXYWH, ImageU8, clip_box_xywh

__all__ = ["DetectedFace", "DetectorError", "FaceDetector", "square_box_xywh"]


class DetectorError(RuntimeError):
    """A detector cannot be built (e.g. its model file is missing)."""


class DetectedFace(NamedTuple):
    """A face found in a frame: its box (x, y, w, h) in the frame's pixels, and its roll, the
    angle in degrees of the line from its left eye to its right eye as the image shows them
    (positive: clockwise on screen; 0.0 where a detector finds no eyes). A detector that
    follows faces from frame to frame gives each its ``track_id``: the same id is the same
    face, a new one a face it has not seen before (after a cut, every face), and its ``age``,
    the frames it followed that face before this one (0: first seen)."""

    box_xywh: BoxXYWH
    roll_deg: float = 0.0
    track_id: int | None = None
    age: int = 0


class FaceDetector(Protocol):
    """Finds faces in a BGR frame of the stream ``stream_id`` (a detector that follows faces
    keeps its state per stream; the others ignore it)."""

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]: ...


def square_box_xywh(
    box_xywh: tuple[float, float, float, float],
    scale: float,
    shift_y: float,
    size_wh: tuple[int, int],
) -> BoxXYWH | None:
    """A square box of side ``scale`` x the box's mean side, on its centre moved down by
    ``shift_y`` x that side, in whole pixels and clipped to the frame (None when outside).

    Makes another detector's boxes look like the Haar cascade's, which the models were trained
    on and the recordings' ground truth comes from.
    """
    x, y, w, h = box_xywh
    side = scale * (w + h) / 2
    if side <= 0:
        return None
    cx, cy = x + w / 2, y + h / 2 + shift_y * side
    square = (round(cx - side / 2), round(cy - side / 2), round(side), round(side))
    return clip_box_xywh(square, size_wh)
