"""MediaPipe's BlazeFace face detector, run on LiteRT (``ai-edge-litert``; no mediapipe, no
TensorFlow).

The ``.tflite`` files come from the mediapipe wheel (``scripts/extract_blazeface.py``; licence
and sha256 in ``assets/blazeface/``). The frame is letterboxed to the model input, the SSD
outputs decoded with ``ssd``, and each box mapped back to frame pixels and grown from
BlazeFace's tight box (brows to mouth) to the square, forehead-to-chin box the Haar cascade
gives, which the tracker, the crop margin and the model's training all assume. The two eye
keypoints give each face its roll.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import ImageU8

from .base import DetectedFace, DetectorError, square_box_xywh
from .ssd import (
    FULL_RANGE,
    SHORT_RANGE,
    AnchorSpec,
    anchors_cxcy,
    decode_boxes_xyxy,
    decode_eyes_xyxy,
    outside_stronger,
    sigmoid_scores,
    weighted_nms_xyxy,
)

__all__ = [
    "ASSETS",
    "BlazeFaceDetector",
    "Letterbox",
    "letterbox_rgb",
    "tile_regions",
    "to_frame_xyxy",
]

ASSETS: Final = Path(__file__).resolve().parents[1] / "assets" / "blazeface"
MODEL_FILES: Final = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range_sparse.tflite",
}
SPECS: Final = {"short": SHORT_RANGE, "full": FULL_RANGE}
#: Per variant, (scale, shift_y): the square box's side is ``scale`` x the BlazeFace box's mean
#: side, its centre moved down by ``shift_y`` x that side (negative: up, to take in the forehead).
#: Fitted for the best mean IoU on recordings/demo, whose ground truth is the Haar cascade's
#: (short: 0.87, full: 0.84, against 0.71 and 0.70 for the raw box); see docs/benchmarks.md.
BOX_FIT: Final = {"short": (1.05, -0.14), "full": (1.0, -0.10)}
NMS_IOU: Final = 0.3
#: A face box with at least this share of its area inside a stronger one's is dropped. On 400
#: scenes of FER2013 train/ faces this took false detections from 0.085 to 0.060 a frame at the
#: same recall (0.895); docs/benchmarks.md, "Nested boxes".
NESTED_INSIDE: Final = 0.5
#: Largest face, as a share of a tile's side, that a tile may report: larger ones the whole frame
#: sees at a scale the model knows. On 300 scenes of FER2013 train/ faces 0.5 and 0.65 would
#: find 0.917 and 0.922 of the faces (0.4: 0.900) for 0.097 and 0.103 false a frame (0.087), but
#: both put a false face on the astronaut's suit in scikit-image's photo, a real one.
TILE_MAX_FACE: Final = 0.4


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
    resized = frame_bgr
    if (new_w, new_h) != (width, height):
        resized = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
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


def tile_regions(
    width: int, height: int, fraction: float = 2 / 3
) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles, each two thirds of the frame's short side, that cover it with
    half a tile of overlap: small faces come to the model at 1.5 times the full frame's scale
    and more (a 60 px face in a 640x480 frame is 24 px of the 128 px input instead of 12)."""
    side = max(1, round(fraction * min(width, height)))
    stride = max(1, side // 2)

    def starts(extent: int) -> list[int]:
        count = max(1, -(-(extent - side) // stride) + 1)
        return sorted({round(i * (extent - side) / max(count - 1, 1)) for i in range(count)})

    return [(x, y, side, side) for y in starts(height) for x in starts(width)]


def _interpreter(path: Path, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads if threads > 0 else None)
    interpreter.allocate_tensors()
    return interpreter


class BlazeFaceDetector:
    """BlazeFace short-range (faces within ~2 m) or full-range (sparse, up to ~5 m)."""

    def __init__(
        self,
        variant: Literal["short", "full"] = "short",
        *,
        min_face_px: int = 40,
        min_score: float | None = None,
        threads: int = 0,
        model_path: Path | None = None,
        tiled: bool = False,
    ) -> None:
        path = model_path or ASSETS / MODEL_FILES[variant]
        if not path.is_file():
            raise DetectorError(
                f"BlazeFace model not found: {path} (made by scripts/extract_blazeface.py)"
            )
        if min_face_px < 1:
            raise ValueError(f"expected min_face_px >= 1, found {min_face_px}")
        try:
            self._interpreter = _interpreter(path, threads)
        except (ValueError, RuntimeError) as error:
            raise DetectorError(f"BlazeFace model could not be loaded: {path}: {error}") from error
        self._spec: AnchorSpec = SPECS[variant]
        self._box_fit = BOX_FIT[variant]
        self._anchors = anchors_cxcy(self._spec)
        self._min_score = self._spec.min_score if min_score is None else min_score
        self._min_face_px = min_face_px
        self._tiled = tiled
        (self._input,) = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        # Regressors (1, A, 16) and classificators (1, A, 1); tell them apart by shape.
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self._regressors, self._scores = by_width[16], by_width[1]
        expected = (1, self._spec.input_size, self._spec.input_size, 3)
        anchors = {int(d["shape"][1]) for d in outputs}
        if tuple(self._input["shape"]) != expected or anchors != {len(self._anchors)}:
            raise DetectorError(
                f"{path}: input {tuple(self._input['shape'])} and {anchors} anchors, expected "
                f"{expected} and {len(self._anchors)} for BlazeFace {variant} range"
            )
        # One interpreter holds one set of tensors; the worker calls from one thread, a bench
        # might not.
        self._lock = threading.Lock()

    def detect(self, frame_bgr: ImageU8) -> list[DetectedFace]:
        height, width = frame_bgr.shape[:2]
        regions = [(0, 0, width, height), *(tile_regions(width, height) if self._tiled else [])]
        source, scale = frame_bgr, 1.0
        if len(regions) > 1:
            # One resize of the frame to the tiles' scale, which every tile is cut from and the
            # whole frame shrunk from: a third of the time of resizing each region on its own.
            scale = self._spec.input_size / regions[1][2]
            size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
            source = cv2.resize(frame_bgr, size_wh, interpolation=cv2.INTER_AREA)
        found = [self._detect_region(source, scale, region, (width, height)) for region in regions]
        rows = np.concatenate([b for b, _ in found])
        scores = np.concatenate([s for _, s in found])
        if not len(rows):
            return []
        merged, _ = weighted_nms_xyxy(rows, scores, NMS_IOU)  # strongest first
        scale, shift_y = self._box_fit
        faces = []
        for x0, y0, x1, y1, left_x, left_y, right_x, right_y in merged.astype(np.float64).tolist():
            box = square_box_xywh((x0, y0, x1 - x0, y1 - y0), scale, shift_y, (width, height))
            if box is not None and min(box[2], box[3]) >= self._min_face_px:
                roll = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
                faces.append(DetectedFace(box, roll))
        if len(faces) < 2:
            return faces
        corners = [(x, y, x + w, y + h) for x, y, w, h in (face.box_xywh for face in faces)]
        keep = outside_stronger(corners, NESTED_INSIDE)
        return [face for face, kept in zip(faces, keep.tolist(), strict=True) if kept]

    def _detect_region(
        self,
        source: ImageU8,
        scale: float,
        region: tuple[int, int, int, int],
        frame_wh: tuple[int, int],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Rows (K, 8) of frame-pixel box xyxy and eyes (``ssd.decode_eyes_xyxy``) and their
        scores, found in one region (frame pixels) of the frame, cut from ``source``: the frame
        resized by ``scale``.

        In a tile (a region smaller than the frame), a box that reaches a side that is not a
        side of the frame is dropped (a face cut by the tile, which a neighbouring tile or the
        whole frame sees whole), and so is a box larger than ``TILE_MAX_FACE`` of the tile (the
        whole frame sees such a face at a scale the model knows; in a tile they were false).
        """
        x, y, w, h = region
        size = self._spec.input_size
        left, top = round(x * scale), round(y * scale)
        cut = source[top : top + max(1, round(h * scale)), left : left + max(1, round(w * scale))]
        tensor, in_cut = letterbox_rgb(cut, size)
        letterbox = Letterbox(in_cut.scale * scale, in_cut.pad_x, in_cut.pad_y)
        origin = (left / scale, top / scale)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor[np.newaxis])
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._regressors)[0]
            raw_scores = self._interpreter.get_tensor(self._scores)[0]
        scores = sigmoid_scores(raw_scores)
        keep = scores >= self._min_score
        if not keep.any():
            return np.zeros((0, 8), np.float32), np.zeros((0,), np.float32)
        anchors, box_scale = self._anchors[keep], self._spec.box_scale
        pixels = to_frame_xyxy(
            decode_boxes_xyxy(raw_boxes[keep], anchors, box_scale), letterbox, size, origin
        )
        eyes = to_frame_xyxy(
            decode_eyes_xyxy(raw_boxes[keep], anchors, box_scale), letterbox, size, origin
        )
        rows = np.concatenate([pixels, eyes], axis=1)
        width, height = frame_wh
        if (w, h) == (width, height):
            return rows, scores[keep]
        margin = 0.02 * max(w, h)
        sides = np.maximum(pixels[:, 2] - pixels[:, 0], pixels[:, 3] - pixels[:, 1])
        whole = (
            ((pixels[:, 0] > x + margin) | (x == 0))
            & ((pixels[:, 1] > y + margin) | (y == 0))
            & ((pixels[:, 2] < x + w - margin) | (x + w >= width))
            & ((pixels[:, 3] < y + h - margin) | (y + h >= height))
            & (sides <= TILE_MAX_FACE * max(w, h))
        )
        return rows[whole].astype(np.float32), scores[keep][whole]
