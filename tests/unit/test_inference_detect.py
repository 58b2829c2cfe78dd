"""Haar face detection on a real portrait: found where it is, nothing found where nothing is.

Also the box helper the other detectors share (``square_box_xywh``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from services.inference.settings import WorkerSettings
from shared.image import iou_xywh
from stages.detectors import (
    DetectedFace,
    DetectorConfig,
    DetectorError,
    HaarDetector,
    build_detector,
    detector_for,
    detector_names,
    framing_for,
    register,
    registry,
    square_box_xywh,
)
from stages.framing import Framing
from tests.conftest import ASTRONAUT_FACE_XYWH

pytestmark = pytest.mark.timeout(30)


def _scaled(box: tuple[int, int, int, int], factor: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return round(x * factor), round(y * factor), round(w * factor), round(h * factor)


@pytest.mark.parametrize(
    ("factor", "detect_max_width"),
    [(1.0, 640), (2.0, 640), (1.25, 640), (1.0, 256)],
    ids=["native", "downscaled-2x", "downscaled-1.25x", "small-detect-width"],
)
def test_finds_the_astronauts_face(
    astronaut_bgr: np.ndarray, factor: float, detect_max_width: int
) -> None:
    frame = astronaut_bgr
    if factor != 1.0:
        size = round(512 * factor)
        frame = cv2.resize(astronaut_bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    found = HaarDetector(min_face_px=40, detect_max_width=detect_max_width).detect(frame)
    boxes = [face.box_xywh for face in found]
    assert len(boxes) == 1, boxes
    expected = _scaled(ASTRONAUT_FACE_XYWH, factor)
    assert iou_xywh(boxes[0], expected) > 0.6, (boxes[0], expected)
    assert all(isinstance(value, int) for value in boxes[0])


def test_face_lies_in_the_known_region(astronaut_bgr: np.ndarray) -> None:
    face = HaarDetector().detect(astronaut_bgr)[0]
    (x, y, w, h), roll = face.box_xywh, face.roll_deg
    assert roll == 0.0  # the cascade finds no eyes
    centre_x, centre_y = x + w / 2, y + h / 2
    assert 170 <= centre_x <= 260
    assert 30 <= centre_y <= 160


def test_min_face_px_skips_small_faces(astronaut_bgr: np.ndarray) -> None:
    assert HaarDetector(min_face_px=150).detect(astronaut_bgr) == []


def test_does_not_mutate_the_frame(astronaut_bgr: np.ndarray) -> None:
    frame = astronaut_bgr.copy()
    HaarDetector().detect(frame)
    assert np.array_equal(frame, astronaut_bgr)


def test_missing_cascade_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    with pytest.raises(DetectorError, match=r"Haar cascade not found: .*nope\.xml"):
        HaarDetector(cascade_path=missing)


def test_build_detector_refuses_unknown_names() -> None:
    assert isinstance(build_detector("haar"), HaarDetector)
    with pytest.raises(DetectorError, match="unknown detector: expected one of"):
        build_detector("yolo")


def test_a_new_detector_is_one_registration_and_takes_its_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class CornerConfig(DetectorConfig):
        corner_px: int = 10

    class Corner:
        def __init__(self, config: CornerConfig) -> None:
            self.config = config

        def detect(self, frame_bgr: np.ndarray, stream_id: str = "") -> list[DetectedFace]:
            side = self.config.min_face_px
            return [DetectedFace((self.config.corner_px, self.config.corner_px, side, side))]

    monkeypatch.setattr(registry, "_PLUGINS", dict(registry._PLUGINS))
    register("corner", CornerConfig, Framing(1.2), "a face in the corner")(Corner)
    assert "corner" in detector_names()
    settings = WorkerSettings(detector="corner", min_face_px=64, full_every=5)
    with caplog.at_level("WARNING"):
        detector = detector_for(settings)
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == [DetectedFace((10, 10, 64, 64))]
    assert "does not read full_every" in caplog.text
    assert framing_for("corner").scale == pytest.approx(1.2)
    with pytest.raises(DetectorError, match="takes no detect_max_width"):
        build_detector("corner", detect_max_width=320)
    with pytest.raises(ValidationError, match="expected one of"):
        WorkerSettings(detector="nothing-like-it")


@pytest.mark.parametrize("name", detector_names())
def test_every_detector_the_settings_accept_is_built_and_runs(name: str) -> None:
    settings = WorkerSettings(detector=name)
    try:
        detector = detector_for(settings)
    except DetectorError as error:
        # Only an optional extra that is not installed may stop one (mtcnn without [mtcnn]).
        assert "pip install" in str(error), error
        pytest.skip(str(error))
    assert detector.detect(np.zeros((240, 320, 3), np.uint8), "cam0") == []


@pytest.mark.parametrize(
    ("box", "scale", "shift_y", "expected"),
    [
        ((10.0, 20.0, 40.0, 40.0), 1.0, 0.0, (10, 20, 40, 40)),
        ((10.0, 20.0, 30.0, 50.0), 1.0, 0.0, (5, 25, 40, 40)),
        ((10.0, 20.0, 40.0, 40.0), 1.5, 0.0, (0, 10, 60, 60)),
        ((10.0, 20.0, 40.0, 40.0), 1.0, -0.25, (10, 10, 40, 40)),
        ((-100.0, -100.0, 50.0, 50.0), 1.0, 0.0, None),
    ],
    ids=["square", "tall-to-square", "grown", "moved-up", "outside"],
)
def test_square_box(
    box: tuple[float, float, float, float],
    scale: float,
    shift_y: float,
    expected: tuple[int, int, int, int] | None,
) -> None:
    assert square_box_xywh(box, scale, shift_y, (640, 480)) == expected
