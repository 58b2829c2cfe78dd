"""What every face detector is: a BGR frame in, face boxes in full-frame pixels out."""

from __future__ import annotations

from typing import Protocol

from shared.image import BoxXYWH, ImageU8, clip_box_xywh

__all__ = ["DetectorError", "FaceDetector", "square_box_xywh"]


class DetectorError(RuntimeError):
    """A detector cannot be built (e.g. its model file is missing)."""


class FaceDetector(Protocol):
    """Finds faces; boxes are (x, y, w, h) in the pixels of the frame given."""

    def detect(self, frame_bgr: ImageU8) -> list[BoxXYWH]: ...


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
