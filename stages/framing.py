"""The one place that turns a detector's face box into the crop the model sees.

The classifier learned FER2013's framing: a square from forehead to chin, about as wide as the
face. Each detector draws its box elsewhere (BlazeFace's is brows to mouth, Haar's a little
wider), so each gets a ``Framing``: the FER2013 frame's side and centre relative to the
detector's box (each detector plugin carries its own, ``detectors.framing_for``), fitted on
training faces by ``python -m bench.accuracy --fit`` (where a
detector found a pasted FER2013 face, the square it was pasted into is the frame to learn).
The crop is square even at the frame's edge: what lies outside is the edge pixels repeated,
never a squeezed face. Where the detector found the eyes, the crop can be turned so that the
eye line is level (``align_roll``, off by default in the services): the shipped network learned
heads tilted by up to 15 degrees, and on whole heads tilted that far levelling was within the
noise either way; it wins where heads tilt further (docs/benchmarks.md, "Roll").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from shared.image import BoxXYWH, ImageError, ImageU8, SizeHW, to_gray

__all__ = ["Framing", "model_crop", "model_frame"]


@dataclass(frozen=True)
class Framing:
    """The model's frame relative to a detector's box (side: the mean of its width and height):
    a square of ``scale`` x side, its centre moved by ``shift_x``, ``shift_y`` x side along the
    face's own axes; with ``align_roll``, turned with the face's roll (its eye line)."""

    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    align_roll: bool = True

    def with_margin(self, margin: float) -> Framing:
        """The same frame grown by ``margin`` of its side on each side (``face_margin``)."""
        return Framing(self.scale * (1 + 2 * margin), self.shift_x, self.shift_y, self.align_roll)


def model_frame(
    box_xywh: BoxXYWH, framing: Framing, roll_deg: float = 0.0
) -> tuple[float, float, float]:
    """The model's square frame for a detector box, as (centre x, centre y, side) in pixels;
    it may reach outside the image. The shift follows the face's axes, turned by ``roll_deg``
    (clockwise on screen) when the framing aligns roll."""
    x, y, w, h = (float(v) for v in box_xywh)
    side = (w + h) / 2
    angle = math.radians(roll_deg) if framing.align_roll else 0.0
    along_x, along_y = framing.shift_x * side, framing.shift_y * side
    centre_x = x + w / 2 + along_x * math.cos(angle) - along_y * math.sin(angle)
    centre_y = y + h / 2 + along_x * math.sin(angle) + along_y * math.cos(angle)
    return centre_x, centre_y, framing.scale * side


def _square_patch(frame_bgr: ImageU8, centre_x: float, centre_y: float, side: float) -> ImageU8:
    """The gray square of ``side`` on the centre, edge pixels repeated where it leaves the frame.

    Raises ImageError when it lies entirely outside the image.
    """
    size = max(1, round(side))
    x0, y0 = round(centre_x - size / 2), round(centre_y - size / 2)
    height, width = frame_bgr.shape[:2]
    inside_x0, inside_y0 = max(x0, 0), max(y0, 0)
    inside_x1, inside_y1 = min(x0 + size, width), min(y0 + size, height)
    if inside_x1 <= inside_x0 or inside_y1 <= inside_y0:
        raise ImageError(
            f"face frame of side {size} at ({x0}, {y0}) lies outside a {width}x{height} image"
        )
    patch = to_gray(frame_bgr[inside_y0:inside_y1, inside_x0:inside_x1])
    square = cv2.copyMakeBorder(
        patch,
        inside_y0 - y0,
        y0 + size - inside_y1,
        inside_x0 - x0,
        x0 + size - inside_x1,
        cv2.BORDER_REPLICATE,
    )
    return np.asarray(square, np.uint8)


def model_crop(
    frame_bgr: ImageU8,
    box_xywh: BoxXYWH,
    framing: Framing,
    size_hw: SizeHW,
    roll_deg: float = 0.0,
) -> ImageU8:
    """The face in ``box_xywh``, framed as the model learned (and turned upright by
    ``roll_deg`` when the framing aligns roll), as a gray uint8 image of ``size_hw``; parts
    outside the frame repeat its edge pixels.

    Raises ImageError when the frame lies entirely outside the image.
    """
    out_h, out_w = int(size_hw[0]), int(size_hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ImageError(f"size_hw: expected positive sides, found {size_hw}")
    centre_x, centre_y, side = model_frame(box_xywh, framing, roll_deg)
    if not framing.align_roll or roll_deg == 0.0:
        square = _square_patch(frame_bgr, centre_x, centre_y, side)
        return np.asarray(
            cv2.resize(square, (out_w, out_h), interpolation=cv2.INTER_AREA), np.uint8
        )
    # A square sqrt(2) larger holds the frame at any angle: bring it near the output's scale
    # first (INTER_AREA, no aliasing), then turn the frame level and cut it out.
    reach = math.sqrt(2)
    near = math.ceil(max(out_h, out_w) * reach) + 2
    square = _square_patch(frame_bgr, centre_x, centre_y, side * reach)
    small = cv2.resize(square, (near, near), interpolation=cv2.INTER_AREA)
    frame_px = near / reach  # the model frame's side in ``small``
    turn = cv2.getRotationMatrix2D(((near - 1) / 2, (near - 1) / 2), roll_deg, 1.0)
    zoom = np.diag([out_w / frame_px, out_h / frame_px]).astype(np.float64)
    matrix = zoom @ turn
    matrix[:, 2] += ((out_w - 1) / 2, (out_h - 1) / 2) - zoom @ np.array(
        [(near - 1) / 2, (near - 1) / 2]
    )
    upright = cv2.warpAffine(
        small, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(upright, np.uint8)
