"""MediaPipe's BlazeFace face detector, run with TensorFlow's TFLite interpreter (no mediapipe).

The ``.tflite`` files come from the mediapipe wheel (``scripts/extract_blazeface.py``; licence
and sha256 in ``assets/blazeface/``). The frame is letterboxed to the model input, the SSD
outputs decoded with ``ssd``, and each box mapped back to frame pixels and grown from
BlazeFace's tight box (brows to mouth) to the square, forehead-to-chin box the Haar cascade
gives, which the tracker, the crop margin and the model's training all assume.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import BoxXYWH, ImageU8

from .detect import DetectorError, square_box_xywh
from .ssd import (
    FULL_RANGE,
    SHORT_RANGE,
    AnchorSpec,
    anchors_cxcy,
    decode_boxes_xyxy,
    sigmoid_scores,
    weighted_nms_xyxy,
)

__all__ = [
    "ASSETS",
    "BlazeFaceDetector",
    "Letterbox",
    "boxes_to_frame_xywh",
    "letterbox_rgb",
]

ASSETS: Final = Path(__file__).resolve().parent / "assets" / "blazeface"
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
    resized = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized[:, :, ::-1]
    tensor = canvas.astype(np.float32) / 127.5 - 1.0
    return tensor, Letterbox(scale, pad_x, pad_y)


def boxes_to_frame_xywh(
    boxes_xyxy: npt.NDArray[np.float32],
    letterbox: Letterbox,
    input_size: int,
    size_wh: tuple[int, int],
    *,
    box_scale: float = 1.0,
    shift_y: float = 0.0,
) -> list[BoxXYWH]:
    """Normalised model-input boxes -> square frame-pixel boxes, grown and clipped to the frame."""
    boxes: list[BoxXYWH] = []
    for x0, y0, x1, y1 in np.asarray(boxes_xyxy, dtype=np.float64).tolist():
        fx0 = (x0 * input_size - letterbox.pad_x) / letterbox.scale
        fy0 = (y0 * input_size - letterbox.pad_y) / letterbox.scale
        fx1 = (x1 * input_size - letterbox.pad_x) / letterbox.scale
        fy1 = (y1 * input_size - letterbox.pad_y) / letterbox.scale
        box = square_box_xywh((fx0, fy0, fx1 - fx0, fy1 - fy0), box_scale, shift_y, size_wh)
        if box is not None:
            boxes.append(box)
    return boxes


def _interpreter(path: Path, threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF 2.20+ warns that tf.lite.Interpreter moves to ai_edge_litert; it still works, and
        # one more runtime dependency is not worth it for a 0.2 MB model.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(
            model_path=str(path), num_threads=threads if threads > 0 else None
        )
    interpreter.allocate_tensors()
    return interpreter


class BlazeFaceDetector:
    """BlazeFace short-range (faces within ~2 m) or full-range (sparse, up to ~5 m)."""

    def __init__(
        self,
        variant: Literal["short", "full"] = "short",
        min_face_px: int = 40,
        min_score: float | None = None,
        threads: int = 0,
        model_path: Path | None = None,
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

    def detect(self, frame_bgr: ImageU8) -> list[BoxXYWH]:
        height, width = frame_bgr.shape[:2]
        size = self._spec.input_size
        tensor, letterbox = letterbox_rgb(frame_bgr, size)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor[np.newaxis])
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._regressors)[0]
            raw_scores = self._interpreter.get_tensor(self._scores)[0]
        scores = sigmoid_scores(raw_scores)
        keep = scores >= self._min_score
        if not keep.any():
            return []
        boxes = decode_boxes_xyxy(raw_boxes[keep], self._anchors[keep], self._spec.box_scale)
        merged, _ = weighted_nms_xyxy(boxes, scores[keep], NMS_IOU)
        scale, shift_y = self._box_fit
        found = boxes_to_frame_xywh(
            merged, letterbox, size, (width, height), box_scale=scale, shift_y=shift_y
        )
        return [box for box in found if min(box[2], box[3]) >= self._min_face_px]
