"""SSD box maths for BlazeFace, as pure numpy: anchors, box decoding and weighted NMS.

Follows MediaPipe's SsdAnchorsCalculator (fixed anchor size), TensorsToDetectionsCalculator
and NonMaxSuppressionCalculator (WEIGHTED) with the options of its face_detection graphs.
Boxes here are ``xyxy`` in coordinates normalised to the model input ([0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.image import box_areas_xyxy, iou_matrix_xyxy, overlap_matrix_xyxy

__all__ = [
    "FULL_RANGE",
    "NESTED_INSIDE",
    "NMS_IOU",
    "SHORT_RANGE",
    "AnchorSpec",
    "anchors_cxcy",
    "decode_boxes_xyxy",
    "decode_eyes_xyxy",
    "outside_stronger",
    "sigmoid_scores",
    "weighted_nms_xyxy",
]

FloatArray = npt.NDArray[np.float32]

#: Detections of one face overlap by this IoU or more (weighted NMS).
NMS_IOU: Final = 0.3
#: A face box with at least this share of its area inside a stronger one's is dropped. On 400
#: scenes of FER2013 train/ faces this took false detections from 0.085 to 0.060 a frame at the
#: same recall (0.895); docs/benchmarks.md, "Nested boxes".
NESTED_INSIDE: Final = 0.5
#: MediaPipe clips raw scores to this before the sigmoid (score_clipping_thresh).
SCORE_CLIP = 100.0


@dataclass(frozen=True)
class AnchorSpec:
    """One BlazeFace model's anchor layout and decoding options."""

    input_size: int
    strides: tuple[int, ...]
    #: Anchors per cell per layer: one aspect ratio (1.0), plus one interpolated scale if set.
    interpolated_scale: bool
    #: Raw box offsets are in input pixels: divide by this (x_scale = w_scale = input size).
    box_scale: float
    min_score: float


SHORT_RANGE = AnchorSpec(
    input_size=128, strides=(8, 16, 16, 16), interpolated_scale=True, box_scale=128.0, min_score=0.5
)
FULL_RANGE = AnchorSpec(
    input_size=192, strides=(4,), interpolated_scale=False, box_scale=192.0, min_score=0.6
)


def anchors_cxcy(spec: AnchorSpec) -> FloatArray:
    """Anchor centres (A, 2) as (cx, cy) in [0, 1], in the order of the model's outputs.

    With fixed anchor size every anchor is 1x1, so only centres matter; consecutive layers of
    the same stride share one feature map and stack their anchors per cell.
    """
    centres: list[FloatArray] = []
    per_layer = 2 if spec.interpolated_scale else 1
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = layer
        while same < len(spec.strides) and spec.strides[same] == stride:
            same += 1
        per_cell = per_layer * (same - layer)
        side = -(-spec.input_size // stride)  # ceil
        grid = (np.arange(side, dtype=np.float32) + 0.5) / side
        cy, cx = np.meshgrid(grid, grid, indexing="ij")
        cells = np.stack([cx.ravel(), cy.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def sigmoid_scores(raw: npt.NDArray[np.floating]) -> FloatArray:
    """Scores (A,) in [0, 1] from the model's raw classificator logits (A,) or (A, 1)."""
    # float64: exp(100) overflows float32.
    clipped = np.clip(np.asarray(raw, dtype=np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)


def decode_boxes_xyxy(
    raw: npt.NDArray[np.floating], anchors: FloatArray, box_scale: float
) -> FloatArray:
    """Boxes (A, 4) ``xyxy`` in [0, 1] from raw regressors (A, >=4): cx, cy, w, h offsets."""
    values = np.asarray(raw, dtype=np.float32).reshape(len(anchors), -1)
    if values.shape[1] < 4:
        raise ValueError(f"expected at least 4 regressor values per anchor, found {values.shape}")
    cx = values[:, 0] / box_scale + anchors[:, 0]
    cy = values[:, 1] / box_scale + anchors[:, 1]
    half_w = values[:, 2] / box_scale / 2
    half_h = values[:, 3] / box_scale / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


def decode_eyes_xyxy(
    raw: npt.NDArray[np.floating], anchors: FloatArray, box_scale: float
) -> FloatArray:
    """The first two keypoints (A, 4) as ``x, y`` of the eye on the image's left, then of the
    other, in [0, 1], from raw regressors (A, 16): four box values, then six keypoints."""
    values = np.asarray(raw, dtype=np.float32).reshape(len(anchors), -1)
    if values.shape[1] < 8:
        raise ValueError(f"expected at least 8 regressor values per anchor, found {values.shape}")
    eyes: FloatArray = values[:, 4:8] / box_scale + np.tile(anchors, 2)
    return eyes


def weighted_nms_xyxy(
    boxes_xyxy: FloatArray,
    scores: FloatArray,
    iou_threshold: float = 0.3,
    max_boxes: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of its cluster.

    Highest score first; every remaining box with IoU > ``iou_threshold`` with it joins its
    cluster and is removed. Rows may carry more columns after the box (keypoints): they are
    averaged alike. Returns rows (K, columns) and the clusters' top scores (K,), highest
    first. Inputs are not modified.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = np.asarray(boxes_xyxy, dtype=np.float32)[order]
    left_scores = np.asarray(scores, dtype=np.float32)[order]
    kept: list[FloatArray] = []
    kept_scores: list[float] = []
    while len(remaining) and (max_boxes is None or len(kept) < max_boxes):
        overlaps = iou_matrix_xyxy(remaining[:1], remaining)[0]
        cluster = overlaps > iou_threshold
        cluster[0] = True
        weights = left_scores[cluster]
        kept.append((remaining[cluster] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(float(left_scores[0]))
        remaining = remaining[~cluster]
        left_scores = left_scores[~cluster]
    if not kept:
        width = np.asarray(boxes_xyxy).shape[1] if np.ndim(boxes_xyxy) == 2 else 4
        return np.zeros((0, width), np.float32), np.zeros((0,), np.float32)
    return np.stack(kept).astype(np.float32), np.asarray(kept_scores, np.float32)


def outside_stronger(boxes_xyxy: npt.ArrayLike, min_inside: float) -> npt.NDArray[np.bool_]:
    """Which boxes (N, 4+), given strongest first, to keep when a box that shares at least
    ``min_inside`` of the smaller one's area with a stronger kept box is dropped: a face seen
    again at another scale, or a part of a face (an eye and a brow) taken for a small face.
    IoU alone misses these, a small box inside a large one having a small IoU with it."""
    boxes = np.atleast_2d(np.asarray(boxes_xyxy, dtype=np.float64))[:, :4]
    keep = np.ones(len(boxes), dtype=bool)
    if len(boxes) < 2:
        return keep
    overlap = overlap_matrix_xyxy(boxes, boxes)
    area = box_areas_xyxy(boxes)
    smaller = np.minimum(area[:, None], area[None, :])
    shared = np.where(smaller > 0, overlap / np.where(smaller > 0, smaller, 1.0), 0.0)
    for index in range(1, len(boxes)):
        keep[index] = not bool((shared[index, :index][keep[:index]] >= min_inside).any())
    return keep
