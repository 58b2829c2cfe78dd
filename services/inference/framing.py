"""The one place that turns a detector's face box into the crop the model sees.

The classifier learned FER2013's framing: a square from forehead to chin, about as wide as the
face. Each detector draws its box elsewhere (BlazeFace's is brows to mouth, Haar's a little
wider), so each gets a ``Framing``: the FER2013 frame's side and centre relative to the
detector's box, fitted on training faces by ``python -m bench.accuracy --fit`` (where a
detector found a pasted FER2013 face, the square it was pasted into is the frame to learn).
The crop is square even at the frame's edge: what lies outside is the edge pixels repeated,
never a squeezed face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from shared.image import BoxXYWH, ImageError, ImageU8, SizeHW, to_gray

__all__ = ["FRAMINGS", "Framing", "framing_for", "model_crop", "model_frame"]


@dataclass(frozen=True)
class Framing:
    """The model's frame relative to a detector's box (side: the mean of its width and height):
    a square of ``scale`` x side, its centre moved by ``shift_x``, ``shift_y`` x side."""

    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def with_margin(self, margin: float) -> Framing:
        """The same frame grown by ``margin`` of its side on each side (``face_margin``)."""
        return Framing(self.scale * (1 + 2 * margin), self.shift_x, self.shift_y)


#: Per detector, fitted on scenes of FER2013 train/ faces and checked on test/ faces
#: (docs/benchmarks.md, "Framing"): median ratios over the faces each detector found.
FRAMINGS: Final[dict[str, Framing]] = {
    "haar": Framing(1.05, 0.0, 0.0),
    "blazeface": Framing(1.14, 0.0, 0.045),
    # The same network and box as blazeface, without the tiles.
    "blazeface_single": Framing(1.14, 0.0, 0.045),
    "blazeface_full": Framing(1.16, 0.0, 0.055),
    # Not fitted (MTCNN needs TensorFlow and takes 130 ms a frame): its box as it is.
    "mtcnn": Framing(1.0, 0.0, 0.0),
}


def framing_for(detector: str, margin: float = 0.0) -> Framing:
    """The fitted framing of ``detector`` (identity for one without a fit), grown by ``margin``."""
    return FRAMINGS.get(detector, Framing()).with_margin(margin)


def model_frame(box_xywh: BoxXYWH, framing: Framing) -> tuple[float, float, float]:
    """The model's square frame for a detector box, as (centre x, centre y, side) in pixels;
    it may reach outside the image."""
    x, y, w, h = (float(v) for v in box_xywh)
    side = (w + h) / 2
    centre_x = x + w / 2 + framing.shift_x * side
    centre_y = y + h / 2 + framing.shift_y * side
    return centre_x, centre_y, framing.scale * side


def model_crop(frame_bgr: ImageU8, box_xywh: BoxXYWH, framing: Framing, size_hw: SizeHW) -> ImageU8:
    """The face in ``box_xywh``, framed as the model learned, as a gray uint8 image of
    ``size_hw``; parts outside the frame repeat its edge pixels.

    Raises ImageError when the frame lies entirely outside the image.
    """
    out_h, out_w = int(size_hw[0]), int(size_hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ImageError(f"size_hw: expected positive sides, found {size_hw}")
    centre_x, centre_y, side = model_frame(box_xywh, framing)
    size = max(1, round(side))
    x0, y0 = round(centre_x - size / 2), round(centre_y - size / 2)
    height, width = frame_bgr.shape[:2]
    inside_x0, inside_y0 = max(x0, 0), max(y0, 0)
    inside_x1, inside_y1 = min(x0 + size, width), min(y0 + size, height)
    if inside_x1 <= inside_x0 or inside_y1 <= inside_y0:
        raise ImageError(f"face frame of {box_xywh} lies outside a {width}x{height} image")
    patch = to_gray(frame_bgr[inside_y0:inside_y1, inside_x0:inside_x1])
    square = cv2.copyMakeBorder(
        patch,
        inside_y0 - y0,
        y0 + size - inside_y1,
        inside_x0 - x0,
        x0 + size - inside_x1,
        cv2.BORDER_REPLICATE,
    )
    return np.asarray(cv2.resize(square, (out_w, out_h), interpolation=cv2.INTER_AREA), np.uint8)
