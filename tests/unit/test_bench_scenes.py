"""Benchmark scenes and their scoring: truth where the faces are, matching one to one."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy import Detection, match, score
from bench.scenes import FRAME_WH, backgrounds, make_scene, make_shots
from shared.image import decode_jpeg


def _faces() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (10, 48, 48, 1), dtype=np.uint8), np.arange(10) % 7


def test_scenes_are_seeded_and_hold_their_faces_where_the_truth_says() -> None:
    faces, labels = _faces()
    photos = backgrounds()
    assert len(photos) >= 8
    first = [make_scene(np.random.default_rng(3), faces, labels, photos) for _ in range(2)]
    assert first[0] == first[1]
    for seed in range(20):
        scene = make_scene(np.random.default_rng(seed), faces, labels, photos)
        frame = decode_jpeg(scene.jpeg)
        assert frame.shape == (FRAME_WH[1], FRAME_WH[0], 3)
        assert 1 <= len(scene.faces) <= 3
        for face in scene.faces:
            x, y, side, height = face.box_xywh
            assert side == height and 60 <= side <= 300
            assert face.label == labels[face.index]
            # At least 70% of each side lies in the frame.
            assert x >= -0.3 * side and y >= -0.3 * side
            assert x + 0.7 * side <= FRAME_WH[0] and y + 0.7 * side <= FRAME_WH[1]


def test_match_is_one_to_one_and_needs_overlap() -> None:
    truth = [(0, 0, 10, 10), (100, 100, 10, 10)]
    found = [(1, 1, 10, 10), (0, 0, 9, 9), (50, 50, 10, 10)]
    assert match(truth, found) == {0: 1}


def test_match_takes_a_smaller_box_within_a_square_left_over() -> None:
    # A loosely framed face: the detector's box is half the square's side, IoU 0.25.
    truth = [(0, 0, 100, 100), (200, 0, 100, 100)]
    on_face = (25, 20, 50, 50)
    assert match(truth, [on_face]) == {0: 0}
    assert match(truth, [on_face], inside=False) == {}
    # Not when it pokes out of the square, nor when it is too small to be the face.
    assert match(truth, [(60, 20, 50, 50)]) == {}
    assert match(truth, [(40, 40, 30, 30)]) == {}
    # One detection a square: a second box on a face already found stays a false one, and
    # the largest of those within a square left over is its face.
    assert match(truth, [(0, 0, 100, 100), on_face]) == {0: 0}
    assert match(truth, [(210, 10, 40, 40), (220, 20, 60, 60)]) == {1: 1}


def test_score_counts_found_right_false_and_the_ceiling() -> None:
    faces, labels = _faces()
    scene = make_scene(np.random.default_rng(5), faces, labels, [])
    truth = scene.faces
    x, y, side, _ = truth[0].box_xywh
    dets = [
        Detection(truth[0].box_xywh, truth[0].label),
        Detection((600, 0, 5, 5), 0),
        # On the same face, at a fifth of its side: too small to match it, yet not away.
        Detection((x + 2 * side // 5, y + 2 * side // 5, side // 5, side // 5), 0),
    ]
    ceiling = np.ones(len(truth), bool)
    result = score([scene], [dets], ceiling)
    assert result["faces"] == len(truth)
    assert result["recall"] == 1 / len(truth)
    assert result["false_per_frame"] == 2.0
    assert result["false_away_per_frame"] == 1.0
    assert result["accuracy_found"] == 1.0
    assert result["gap"] == 0.0


def test_a_face_left_out_of_the_truth_as_hidden_is_neither_found_nor_false() -> None:
    from dataclasses import replace

    faces, labels = _faces()
    scene = make_scene(np.random.default_rng(5), faces, labels, [])
    behind = (400, 300, 80, 80)
    dets = [Detection(behind, 0), Detection((600, 0, 5, 5), 0)]
    ceiling = np.ones(len(scene.faces), bool)
    assert score([scene], [dets], ceiling)["false_per_frame"] == 2.0
    hidden = replace(scene, ignored=(behind,))
    result = score([hidden], [dets], ceiling)
    assert result["false_per_frame"] == result["false_away_per_frame"] == 1.0
    assert result["recall"] == 0.0
    assert result["faces"] == len(scene.faces)


def test_shots_keep_the_faces_they_hide_as_ignored() -> None:
    faces, labels = _faces()
    scenes, starts = make_shots(np.random.default_rng(2), faces, labels, backgrounds(), 30)
    assert starts[0] == 0 and len(starts) == 30
    ignored = [box for scene in scenes for box in scene.ignored]
    assert ignored, "no face was hidden in 30 shots"
    for scene in scenes:
        truth = {face.box_xywh for face in scene.faces}
        assert not truth & set(scene.ignored)


def test_a_rolled_scene_tilts_the_same_faces_in_the_same_places() -> None:
    faces, labels = _faces()
    photos = backgrounds()
    upright = make_scene(np.random.default_rng(4), faces, labels, photos)
    assert make_scene(np.random.default_rng(4), faces, labels, photos, roll_deg=0.0) == upright
    rolled = make_scene(np.random.default_rng(4), faces, labels, photos, roll_deg=25.0)
    assert rolled.faces == upright.faces
    a, b = decode_jpeg(upright.jpeg), decode_jpeg(rolled.jpeg)
    for face in upright.faces:
        x, y, side, _ = face.box_xywh
        x0, y0 = max(x, 0), max(y, 0)
        inside = (slice(y0, y + side), slice(x0, x + side))
        assert np.abs(a[inside].astype(int) - b[inside].astype(int)).mean() > 5


def test_heads_put_the_same_faces_in_a_head_with_neck_and_shoulders() -> None:
    faces, labels = _faces()
    photos = backgrounds()
    for seed in range(6):
        pasted = make_scene(np.random.default_rng(seed), faces, labels, photos)
        heads = make_scene(np.random.default_rng(seed), faces, labels, photos, kind="heads")
        assert heads.faces == pasted.faces
        a, b = decode_jpeg(pasted.jpeg).astype(int), decode_jpeg(heads.jpeg).astype(int)
        for face in heads.faces:
            x, y, side, _ = face.box_xywh
            centre_x = x + side // 2
            neck = (slice(y + side + 2, y + side + side // 4), slice(centre_x - 4, centre_x + 4))
            if y + side + side // 4 <= FRAME_WH[1] and 4 <= centre_x <= FRAME_WH[0] - 4:
                assert np.abs(a[neck] - b[neck]).mean() > 3, (seed, face)
            # The square's middle is the face itself in both.
            middle = (slice(y + side * 2 // 5, y + side * 3 // 5), slice(x + side * 2 // 5,
                      x + side * 3 // 5))  # fmt: skip
            if x >= 0 and y >= 0 and x + side <= FRAME_WH[0] and y + side <= FRAME_WH[1]:
                assert np.abs(a[middle] - b[middle]).mean() < 12, (seed, face)


def test_an_unknown_scene_kind_is_refused() -> None:
    faces, labels = _faces()
    with pytest.raises(ValueError, match="scene kind"):
        make_scene(np.random.default_rng(0), faces, labels, [], kind="cartoon")
