"""The second look's pure parts: the evidence it weighs and the square it cuts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.detectors.haar import load_cascade
from stages.detectors.second_look import (
    EPS,
    LOOKS,
    SURE_SCORE,
    Look,
    confirm,
    context_square,
    face_logit,
    haar_votes,
    logit,
    unsure,
)

pytestmark = pytest.mark.timeout(10)


def test_logit_is_clipped_and_symmetric() -> None:
    assert logit(0.5) == 0.0
    assert logit(0.9) == pytest.approx(-logit(0.1))
    assert logit(0.0) == logit(EPS) == pytest.approx(-math.log((1 - EPS) / EPS))
    assert logit(1.0) == pytest.approx(-logit(0.0))


def test_evidence_grows_with_the_score_with_every_look_and_with_the_votes() -> None:
    for count in range(1, len(LOOKS) + 1):
        base = face_logit(0.5, [0.5] * count, 0)
        assert face_logit(0.9, [0.5] * count, 0) > base
        assert face_logit(0.5, [0.5] * count, 3) > face_logit(0.5, [0.5] * count, 1) > base
        for index in range(count):
            looks = [0.5] * count
            looks[index] = 0.9
            assert face_logit(0.5, looks, 0) > base


def test_a_face_found_again_is_kept_and_one_not_found_again_is_dropped() -> None:
    assert face_logit(0.6, [0.9], 0) > 0  # a weak candidate that a look confirms
    assert face_logit(0.9, [0.0], 0) < 0  # a strong one that the look does not find again
    assert face_logit(0.3, [0.0, 0.0], 0) < 0
    # The cascade's votes tip a candidate the network is unsure of, not one it rejects.
    assert face_logit(0.4, [0.5], 0) < 0 < face_logit(0.4, [0.5], 8)
    assert face_logit(0.3, [0.0, 0.0], 8) < 0


def test_evidence_needs_one_look_per_weight_and_votes_from_zero() -> None:
    with pytest.raises(ValueError, match="looks"):
        face_logit(0.5, [], 0)
    with pytest.raises(ValueError, match="looks"):
        face_logit(0.5, [0.5] * (len(LOOKS) + 1), 0)
    with pytest.raises(ValueError, match="votes"):
        face_logit(0.5, [0.5], -1)


def test_the_haar_cascade_votes_for_a_face_and_not_for_a_cat() -> None:
    from bench.scenes import photo_bgr

    cascade = load_cascade()
    # The astronaut's face, the cat's and the cup's rim, as BlazeFace boxes them.
    assert haar_votes(cascade, photo_bgr("astronaut"), (176, 76, 276, 176)) >= 3
    assert haar_votes(cascade, photo_bgr("chelsea"), (270, 8, 499, 237)) == 0
    assert haar_votes(cascade, photo_bgr("coffee"), (329, 265, 382, 318)) == 0
    assert haar_votes(cascade, np.zeros((480, 640, 3), np.uint8), (270, 190, 370, 290)) == 0


def test_only_the_unsure_get_another_look_and_never_past_the_last() -> None:
    assert unsure(0.5, 1)
    assert not unsure(5.0, 1)
    assert not unsure(-5.0, 1)
    assert not unsure(0.5, len(LOOKS))


def _marked_frame() -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[200:240, 300:340] = (10, 20, 30)  # a 40 px box
    return frame


def test_the_square_is_context_times_the_box_and_maps_back_to_the_frame() -> None:
    square, scale, corner = context_square(_marked_frame(), (300, 200, 340, 240), 2.0, 128)
    assert square.shape == (128, 128, 3)
    assert scale == pytest.approx(128 / 80)
    assert corner == (280, 180)
    # The box fills the middle half of the square: 32..96.
    assert (square[40:88, 40:88] == (10, 20, 30)).all()
    assert (square[:28] == 0).all() and (square[100:] == 0).all()
    # frame = square / scale + corner
    assert 32 / scale + corner[0] == pytest.approx(300)


def test_the_square_is_black_outside_the_frame() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    square, scale, corner = context_square(frame, (0, 0, 20, 20), 4.0, 64)
    assert corner == (-30, -30)
    inside = round(30 * scale)  # where the frame starts in the square
    assert (square[: inside - 1] == 0).all() and (square[:, : inside - 1] == 0).all()
    assert (square[inside + 1 :, inside + 1 :] == 200).all()


def test_a_box_wholly_outside_gives_a_black_square() -> None:
    square, _, _ = context_square(_marked_frame(), (-500, -500, -400, -400), 2.0, 32)
    assert not square.any()


def test_a_smaller_copy_of_the_frame_gives_the_same_square() -> None:
    import cv2

    rng = np.random.default_rng(0)
    small_noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = np.asarray(cv2.resize(small_noise, (640, 480), interpolation=cv2.INTER_CUBIC), np.uint8)
    half = np.asarray(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA), np.uint8)
    box = (200, 100, 360, 260)
    full, scale_full, corner_full = context_square(frame, box, 2.0, 128)
    small, scale_half, corner_half = context_square(half, box, 2.0, 128, source_scale=0.5)
    assert scale_half == pytest.approx(scale_full)
    assert corner_half == pytest.approx(corner_full)
    assert np.abs(full.astype(int) - small.astype(int)).mean() < 3


def test_confirm_keeps_the_sure_unseen_and_decides_the_rest_by_looks_and_votes() -> None:
    asked: list[tuple[tuple[int, ...], float]] = []
    found_again = {1: 0.95, 2: 0.0, 3: 0.0}  # a face, a clock's hands, a doubtful one
    votes_by = {1: 6, 2: 0, 3: 0}

    def look(indices: list[int], which: Look) -> list[float]:
        asked.append((tuple(indices), which.context))
        return [found_again[i] if i != 3 or which is LOOKS[0] else 0.9 for i in indices]

    def votes(indices: list[int]) -> list[int]:
        return [votes_by[i] for i in indices]

    scores = [SURE_SCORE, 0.6, 0.25, 0.75]
    first = [face_logit(scores[i], [found_again[i]], votes_by[i]) for i in (1, 2, 3)]
    kept = confirm(scores, look, votes)
    assert kept[0] and kept[1] and not kept[2]
    # The sure one is never looked at; every other gets the first look; only those it leaves
    # unsure (here the doubtful one, if any) get the second.
    assert asked[0] == ((1, 2, 3), LOOKS[0].context)
    unsure_after_first = tuple(i for i, e in zip((1, 2, 3), first, strict=True) if unsure(e, 1))
    assert asked[1:] == ([(unsure_after_first, LOOKS[1].context)] if unsure_after_first else [])


def test_confirm_asks_nothing_when_every_candidate_is_sure() -> None:
    def never(*_: object) -> list[float]:
        raise AssertionError("no look or vote for sure candidates")

    def no_votes(indices: list[int]) -> list[int]:
        assert indices == []
        return []

    assert confirm([0.95, 0.99], never, no_votes) == [True, True]
