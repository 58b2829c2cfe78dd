"""Fitting a frame, or a region of it, into a detector's square input, and back.

Pure numpy and OpenCV: the letterbox (aspect kept, black bars), the map from normalised
model-input boxes back to frame pixels (the tiles are ``tiler``'s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.image import ImageU8, shrink

__all__ = ["Letterbox", "letterbox_rgb", "to_frame_xyxy"]


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the square model input: ``input = frame * scale + pad``."""

    scale: float
    pad_x: int
    pad_y: int


def letterbox_rgb(frame_bgr: ImageU8, size: int) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """The frame as a (size, size, 3) RGB float32 image in [-1, 1], aspect kept, black bars."""
    height, width = frame_bgr.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = frame_bgr if (new_w, new_h) == (width, height) else shrink(frame_bgr, (new_w, new_h))
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized[:, :, ::-1]
    tensor = canvas.astype(np.float32) / 127.5 - 1.0
    return tensor, Letterbox(scale, pad_x, pad_y)


def to_frame_xyxy(
    boxes_xyxy: npt.NDArray[np.float32],
    letterbox: Letterbox,
    input_size: int,
    offset_xy: tuple[float, float] = (0, 0),
) -> npt.NDArray[np.float32]:
    """Normalised model-input boxes (K, 4) -> pixel xyxy in the frame whose region at
    ``offset_xy`` was letterboxed."""
    pads = np.array([letterbox.pad_x, letterbox.pad_y] * 2, np.float32)
    offset = np.array(list(offset_xy) * 2, np.float32)
    pixels = (np.asarray(boxes_xyxy, np.float32) * input_size - pads) / letterbox.scale
    return (pixels + offset).astype(np.float32)
