"""SSD maths for BlazeFace: anchor layout, box decoding, scores and weighted NMS on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from shared.image import iou_matrix_xyxy
from stages.detectors.ssd import (
    FULL_RANGE,
    SHORT_RANGE,
    AnchorSpec,
    anchors_cxcy,
    decode_boxes_xyxy,
    outside_stronger,
    sigmoid_scores,
    weighted_nms_xyxy,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("spec", "count"), [(SHORT_RANGE, 896), (FULL_RANGE, 2304)], ids=["short", "full"]
)
def test_anchor_counts_match_the_models(spec: AnchorSpec, count: int) -> None:
    anchors = anchors_cxcy(spec)
    assert anchors.shape == (count, 2)
    assert anchors.dtype == np.float32
    assert anchors.min() > 0.0
    assert anchors.max() < 1.0


def test_short_range_layout() -> None:
    anchors = anchors_cxcy(SHORT_RANGE)
    # 16x16 cells x 2 anchors, then 8x8 cells x 6 (three stride-16 layers share one map).
    assert np.allclose(anchors[0], anchors[1])
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(anchors[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(anchors[518], [1.5 / 8, 0.5 / 8])
    assert np.allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_decode_offsets_are_in_input_pixels() -> None:
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [0.0, 0.0, 64.0, 32.0]
    raw[1, :4] = [12.8, -12.8, 12.8, 12.8]
    boxes = decode_boxes_xyxy(raw, anchors, box_scale=128.0)
    assert np.allclose(boxes[0], [0.25, 0.375, 0.75, 0.625])
    assert np.allclose(boxes[1], [0.30, 0.60, 0.40, 0.70])


def test_decode_refuses_short_rows() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        decode_boxes_xyxy(np.zeros((1, 3), np.float32), np.zeros((1, 2), np.float32), 128.0)


def test_sigmoid_scores_are_clipped_and_flat() -> None:
    scores = sigmoid_scores(np.array([[0.0], [1000.0], [-1000.0]], np.float32))
    assert scores.shape == (3,)
    assert np.allclose(scores, [0.5, 1.0, 0.0])


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
        ([0, 0, 1, 1], [0.5, 0, 1.5, 1], 1 / 3),
        ([0, 0, 1, 1], [2, 2, 3, 3], 0.0),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
    ids=["same", "half", "apart", "empty"],
)
def test_iou_matrix(a: list[float], b: list[float], expected: float) -> None:
    iou = iou_matrix_xyxy(np.array([a], np.float32), np.array([b], np.float32))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected)


def test_weighted_nms_averages_each_cluster_by_score() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    before = boxes.copy(), scores.copy()
    kept, kept_scores = weighted_nms_xyxy(boxes, scores, iou_threshold=0.3)
    assert np.allclose(kept_scores, [0.9, 0.7])
    x0 = (0.9 * 0.1 + 0.6 * 0.0) / 1.5
    assert np.allclose(kept[0], [x0, 0.0, x0 + 1.0, 1.0])
    assert np.allclose(kept[1], [5.0, 5.0, 6.0, 6.0])
    assert np.array_equal(boxes, before[0])
    assert np.array_equal(scores, before[1])


def test_weighted_nms_of_nothing_and_max_boxes() -> None:
    kept, scores = weighted_nms_xyxy(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
    assert kept.shape == (0, 4)
    assert scores.shape == (0,)
    apart = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32)
    kept, scores = weighted_nms_xyxy(apart, np.array([0.5, 0.8, 0.7], np.float32), max_boxes=2)
    assert np.allclose(scores, [0.8, 0.7])
    assert np.allclose(kept, apart[[1, 2]])


def test_a_box_mostly_inside_a_stronger_one_is_dropped_either_way_round() -> None:
    big = [0.0, 0.0, 10.0, 10.0]
    part = [6.0, 6.0, 9.0, 9.0]  # all of it inside big: IoU 0.09, so NMS keeps both
    assert float(iou_matrix_xyxy([big], [part])[0, 0]) < 0.3
    assert outside_stronger([big, part], 0.5).tolist() == [True, False]
    assert outside_stronger([part, big], 0.5).tolist() == [True, False]


def test_boxes_that_share_less_than_the_threshold_are_kept() -> None:
    left = [0.0, 0.0, 4.0, 4.0]
    beside = [3.0, 0.0, 7.0, 4.0]  # a quarter of it overlaps
    apart = [20.0, 20.0, 24.0, 24.0]
    assert outside_stronger([left, beside, apart], 0.5).tolist() == [True, True, True]
    assert outside_stronger([left, beside], 0.25).tolist() == [True, False]
    assert outside_stronger(np.zeros((0, 4)), 0.5).tolist() == []


def test_a_dropped_box_does_not_drop_others() -> None:
    strong = [0.0, 0.0, 4.0, 4.0]
    dropped = [2.0, 0.0, 6.0, 4.0]  # half inside strong
    after = [4.5, 0.0, 8.5, 4.0]  # 3/8 inside dropped, nothing inside strong
    assert outside_stronger([strong, dropped, after], 0.5).tolist() == [True, False, True]
    assert outside_stronger([strong, dropped, after], 0.3).tolist() == [True, False, True]
