"""Detector box -> model crop: the fitted frame, squares at the frame's edge, bad boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.image import BoxXYWH, ImageError, ImageU8, to_gray
from stages.detectors import framing_for, plugin
from stages.framing import Framing, model_crop, model_frame


@pytest.fixture
def gradient_bgr() -> ImageU8:
    ys, xs = np.mgrid[0:48, 0:64]
    frame = np.stack([xs * 4, ys * 5, (xs + ys) * 2], axis=-1)
    return frame.astype(np.uint8)


def test_the_framing_is_the_detectors_own() -> None:
    assert framing_for("haar", align_roll=True) == plugin("haar").framing
    assert framing_for("blazeface_tracking", align_roll=True) == plugin("blazeface").framing
    assert framing_for("blazeface").align_roll is False  # levelling is off by default
    assert framing_for("blazeface_full", align_roll=True).align_roll is False  # its fit says no


def test_model_frame_scales_and_shifts_by_the_box_side() -> None:
    assert model_frame((10, 20, 40, 60), Framing()) == (30.0, 50.0, 50.0)
    assert model_frame((10, 20, 40, 60), Framing(1.2, 0.1, -0.2)) == (35.0, 40.0, 60.0)


def test_margin_grows_the_side_on_each_side() -> None:
    assert framing_for("haar", 0.1).scale == pytest.approx(plugin("haar").framing.scale * 1.2)
    assert framing_for("no-such-detector", align_roll=True) == Framing()


@pytest.mark.parametrize("box", [(10, 5, 20, 20), (-5, -5, 20, 20), (50, 40, 30, 30)])
def test_crop_shape_and_dtype_and_frame_untouched(gradient_bgr: ImageU8, box: BoxXYWH) -> None:
    before = gradient_bgr.copy()
    face = model_crop(gradient_bgr, box, Framing().with_margin(0.1), (48, 48))
    assert face.shape == (48, 48)
    assert face.dtype == np.uint8
    assert np.array_equal(gradient_bgr, before)


def test_identity_framing_inside_the_frame_is_the_box_resized() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    face = model_crop(frame, (20, 30, 48, 48), Framing(), (48, 48))
    assert np.array_equal(face, to_gray(frame)[30:78, 20:68])


def test_a_face_at_the_edge_keeps_its_aspect() -> None:
    """Half outside the frame: the crop is the visible half, not the half squeezed to a face."""
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, 50:] = 255  # white right half
    face = model_crop(frame, (-40, 10, 80, 80), Framing(), (48, 48))
    # Columns of x in [-40, 40) in frame terms: the left ~3/4 repeat column 0 (black) or are
    # black; the white half starts at frame x = 50, outside this box.
    assert face.max() == 0
    face = model_crop(frame, (60, 10, 80, 80), Framing(), (48, 48))
    assert face.min() == 255  # x in [60, 140): all white, the outside repeats the edge


def test_a_box_outside_the_frame_raises(gradient_bgr: ImageU8) -> None:
    with pytest.raises(ImageError):
        model_crop(gradient_bgr, (100, 100, 10, 10), Framing(), (48, 48))


def _astronaut_turned(turn_deg: float) -> tuple[ImageU8, BoxXYWH]:
    """scikit-image's astronaut turned clockwise on screen by ``turn_deg`` about her face, and
    her face's box (the turn leaves the box's centre where it was)."""
    from skimage import data

    box = (175, 62, 96, 96)
    frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
    turn = cv2.getRotationMatrix2D(centre, -turn_deg, 1.0)  # cv2: positive is counter-clockwise
    return np.asarray(cv2.warpAffine(frame, turn, (512, 512)), np.uint8), box


@pytest.mark.parametrize("turn_deg", [-25.0, 12.0, 30.0])
def test_a_tilted_face_is_cropped_upright(turn_deg: float) -> None:
    upright_frame, box = _astronaut_turned(0.0)
    tilted_frame, _ = _astronaut_turned(turn_deg)
    framing = plugin("blazeface").framing
    upright = model_crop(upright_frame, box, framing, (48, 48)).astype(np.float64)
    aligned = model_crop(tilted_frame, box, framing, (48, 48), turn_deg).astype(np.float64)
    as_tilted = model_crop(tilted_frame, box, framing, (48, 48)).astype(np.float64)
    # Turning the image and back resamples it twice: a few grey levels apart (3-7 here),
    # against 30-50 for the crop left tilted.
    assert np.abs(aligned - upright).mean() < 8.0
    assert np.abs(as_tilted - upright).mean() > 3 * np.abs(aligned - upright).mean()


def test_without_align_roll_the_roll_is_ignored() -> None:
    frame, box = _astronaut_turned(20.0)
    framing = Framing(1.1, 0.0, 0.05, align_roll=False)
    assert np.array_equal(
        model_crop(frame, box, framing, (48, 48), 20.0), model_crop(frame, box, framing, (48, 48))
    )
    assert framing_for("blazeface", align_roll=False).align_roll is False


def test_the_frame_shift_follows_the_face_axes() -> None:
    """A shift down the face is down the screen upright, and down-left when the face leans
    clockwise by 90 degrees."""
    cx, cy, side = model_frame((0, 0, 100, 100), Framing(1.0, 0.0, 0.1), 90.0)
    assert (cx, cy, side) == (pytest.approx(40.0), pytest.approx(50.0), 100.0)
    assert model_frame((0, 0, 100, 100), Framing(1.0, 0.0, 0.1)) == (50.0, 60.0, 100.0)
