"""YuNet's sweep of the whole frame: the real YuNet and BlazeFace models on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.image import iou_xywh
from stages.detectors.base import DetectedFace
from stages.detectors.blazeface import BlazeFaceDetector
from stages.detectors.yunet_sweep import SweptFace, YuNetSweep, add_swept
from tests.conftest import ASTRONAUT_FACE_XYWH

pytestmark = pytest.mark.timeout(120)


def test_the_sweep_boxes_a_face_as_blazeface_does(astronaut_bgr: np.ndarray) -> None:
    sweep = YuNetSweep()
    (swept,) = sweep.faces(astronaut_bgr, min_face_px=40)
    (blazeface,) = BlazeFaceDetector("short", tiled=True, sweep_every=0).detect(astronaut_bgr)
    assert iou_xywh(swept.face.box_xywh, ASTRONAUT_FACE_XYWH) >= 0.5, swept
    assert iou_xywh(swept.face.box_xywh, blazeface.box_xywh) >= 0.7, (swept, blazeface)
    assert swept.score >= 0.8
    assert swept.face.roll_deg == 0.0  # YuNet's eyes do not turn with the face
    assert sweep.faces(astronaut_bgr, min_face_px=150) == []  # smaller than asked for
    assert sweep.sweeps == 2


def test_a_frame_wider_than_the_sweep_is_boxed_in_its_own_pixels(
    astronaut_bgr: np.ndarray,
) -> None:
    large = np.asarray(cv2.resize(astronaut_bgr, (1536, 1536)), np.uint8)
    (swept,) = YuNetSweep().faces(large, min_face_px=40)
    x, y, w, h = ASTRONAUT_FACE_XYWH
    assert iou_xywh(swept.face.box_xywh, (3 * x, 3 * y, 3 * w, 3 * h)) >= 0.5, swept


def test_the_full_pass_adds_the_faces_only_the_sweep_finds(
    astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = BlazeFaceDetector("short", tiled=True)
    (found,) = detector.detect(astronaut_bgr)
    assert detector.sweep is not None and detector.sweep.faces_added == 0  # found already
    # BlazeFace blind (every region without a detection): the face is YuNet's alone.
    blind = [(np.zeros((0, 8), np.float32), np.zeros(0, np.float32))] * 9
    monkeypatch.setattr(detector.single_pass, "regions", lambda jobs, frame_wh: blind[: len(jobs)])
    (swept,) = detector.detect(astronaut_bgr)
    assert iou_xywh(swept.box_xywh, found.box_xywh) >= 0.7
    assert detector.sweep.faces_added == 1
    assert detector.detect(astronaut_bgr, sweep=False) == []


def test_the_untracked_detector_sweeps_one_frame_in_sweep_every(
    astronaut_bgr: np.ndarray,
) -> None:
    detector = BlazeFaceDetector("short", tiled=True, sweep_every=3)
    for _ in range(7):
        assert len(detector.detect(astronaut_bgr)) == 1
    assert detector.sweep is not None and detector.sweep.sweeps == 3  # frames 1, 4 and 7
    assert BlazeFaceDetector("short", tiled=True, sweep_every=0).sweep is None
    with pytest.raises(ValueError, match="sweep_every"):
        BlazeFaceDetector("short", tiled=True, sweep_every=-1)


class _Given(YuNetSweep):
    """A sweep that finds the faces it is given (the union is what is tested)."""

    def __init__(self, boxes: list[tuple[int, int, int, int]]) -> None:
        super().__init__()
        self.boxes = boxes

    def faces(self, frame_bgr: np.ndarray, min_face_px: int) -> list[SweptFace]:
        return [SweptFace(DetectedFace(box), 0.9) for box in self.boxes]


def test_a_swept_face_is_added_only_where_no_face_is() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    known = [DetectedFace((100, 100, 100, 100))]
    sweep = _Given(
        [
            (110, 105, 100, 100),  # the known face again (IoU 0.75)
            (120, 120, 40, 40),  # inside it
            (300, 100, 100, 100),  # apart: added
            (310, 110, 100, 100),  # the one just added, again
            (40, 90, 62, 62),  # beside the known face, sharing a corner strip: added
        ]
    )
    faces = add_swept(sweep, frame, known, min_face_px=40)
    assert [face.box_xywh for face in faces] == [
        (100, 100, 100, 100),
        (300, 100, 100, 100),
        (40, 90, 62, 62),
    ]
    assert sweep.faces_added == 2


def test_a_face_is_found_again_around_its_last_box(astronaut_bgr: np.ndarray) -> None:
    sweep = YuNetSweep()
    (swept,) = sweep.faces(astronaut_bgr, min_face_px=40)
    x, y, w, h = swept.face.box_xywh
    moved = (x + 12, y - 8, w, h)  # where it was a frame before
    again = sweep.find_again(astronaut_bgr, moved, min_iou=0.3)
    assert again is not None
    assert iou_xywh(again.face.box_xywh, swept.face.box_xywh) >= 0.8, (again, swept)
    assert again.score >= 0.8
    blank = np.full_like(astronaut_bgr, 90)
    assert sweep.find_again(blank, moved, min_iou=0.3) is None
    far = (x + 200, y + 250, w, h)  # beside her, no face in its square
    assert sweep.find_again(astronaut_bgr, far, min_iou=0.3) is None
    assert sweep.found_again == 1
