"""Training-time jitter: re-framing maths and seeded, shape-keeping face jitter."""

from __future__ import annotations

import numpy as np
import pytest

from training.augment import Jitter, jitter_faces, reframe


@pytest.fixture
def face() -> np.ndarray:
    ys, xs = np.mgrid[0:48, 0:48]
    return ((xs * 3 + ys * 2) % 256).astype(np.uint8)


def test_identity_reframe_keeps_the_face(face: np.ndarray) -> None:
    assert np.array_equal(reframe(face, 1.0), face)


def test_a_shift_moves_the_content(face: np.ndarray) -> None:
    moved = reframe(face, 1.0, (0.25, 0.0))  # the crop's centre 12 px to the right
    assert np.array_equal(moved[:, :36], face[:, 12:])


def test_a_larger_crop_shows_the_face_smaller(face: np.ndarray) -> None:
    block = np.zeros((48, 48), np.uint8)
    block[16:32, 16:32] = 255
    wide = reframe(block, 2.0)
    # The 16 px square now covers about 8 px in the middle.
    assert wide[24, 24] == 255 and wide[24, 18] < 128 and wide[24, 30] < 128


def test_jitter_is_seeded_keeps_shapes_and_changes_faces() -> None:
    faces = np.random.default_rng(0).integers(0, 256, (600, 48, 48, 1), dtype=np.uint8)
    first = jitter_faces(faces, np.random.default_rng(5), Jitter(), threads=2)
    again = jitter_faces(faces, np.random.default_rng(5), Jitter(), threads=1)
    assert first.shape == faces.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, faces)
