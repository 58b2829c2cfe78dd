"""Which views of each face the network sees, laid out in rows and averaged back per face."""

from __future__ import annotations

import numpy as np
import pytest

from stages.views import average_views, choose_views, due_faces, view_rows


def test_alternate_gives_both_views_at_birth_and_without_a_track_then_one_in_turn() -> None:
    track_ids = [None, 7, 7, 7, 7, 8]
    ages = [0, 0, 1, 2, 3, 0]
    assert choose_views(track_ids, ages, "alternate") == [
        "both",
        "both",
        "mirror",
        "face",
        "mirror",
        "both",
    ]
    # A face without a track is seen both ways whatever its age says.
    assert choose_views([None], [5], "alternate") == ["both"]
    assert choose_views(track_ids, ages, "always") == ["both"] * 6
    assert choose_views(track_ids, ages, "never") == ["face"] * 6
    with pytest.raises(ValueError, match="one age per face"):
        choose_views([1, 2], [0], "alternate")


def test_a_followed_face_is_due_at_birth_then_every_nth_frame() -> None:
    track_ids = [None, None, 7, 7, 7, 7, 7]
    ages = [0, 3, 0, 1, 2, 3, 4]
    assert due_faces(track_ids, ages, 1) == [True] * 7
    assert due_faces(track_ids, ages, 2) == [True, True, True, False, True, False, True]
    assert due_faces(track_ids, ages, 3) == [True, True, True, False, False, True, False]
    with pytest.raises(ValueError, match="every"):
        due_faces([1], [0], 0)
    with pytest.raises(ValueError, match="one age per face"):
        due_faces([1, 2], [0], 2)


def test_views_turn_at_each_frame_a_followed_face_is_seen_at() -> None:
    # Seen every second frame: ages 2, 4, 6, 8 are its second, third, fourth and fifth looks.
    assert choose_views([7] * 5, [0, 2, 4, 6, 8], "alternate", every=2) == [
        "both",
        "mirror",
        "face",
        "mirror",
        "face",
    ]
    with pytest.raises(ValueError, match="every"):
        choose_views([7], [2], "alternate", every=0)


def test_rows_hold_each_face_then_its_mirror_and_average_back() -> None:
    faces = np.arange(3 * 2 * 3, dtype=np.uint8).reshape(3, 2, 3, 1)
    rows = view_rows(faces, ["both", "mirror", "face"])
    assert rows.shape == (4, 2, 3, 1) and rows.flags.c_contiguous
    np.testing.assert_array_equal(rows[0], faces[0])
    np.testing.assert_array_equal(rows[1], faces[0][:, ::-1])
    np.testing.assert_array_equal(rows[2], faces[1][:, ::-1])
    np.testing.assert_array_equal(rows[3], faces[2])
    probabilities = np.asarray([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.6, 0.4]], np.float32)
    averaged = average_views(probabilities, ["both", "mirror", "face"])
    np.testing.assert_allclose(averaged, [[0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    assert averaged.dtype == np.float32
    assert view_rows(faces[:0], []).shape == (0, 2, 3, 1)
    assert average_views(probabilities[:0], []).shape == (0, 2)
    with pytest.raises(ValueError, match="expected 3 rows"):
        average_views(probabilities, ["both", "face"])
    with pytest.raises(ValueError, match="one view per face"):
        view_rows(faces, ["both"])
