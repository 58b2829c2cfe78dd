"""Detect once, then track: the real BlazeFace models on frames in which a real face moves.

The face is the astronaut's (scikit-image's portrait), cut with her hair and shoulders and
pasted on a plain background at a new place each frame; a cut is a new background with the
face elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from shared.image import iou_xywh
from stages.detectors import build_detector
from stages.detectors.base import DetectedFace
from stages.detectors.blazeface import BlazeFaceDetector
from stages.detectors.second_look import CANDIDATE_SCORE
from stages.detectors.tracking import TrackingDetector, is_cut, thumbnail
from tests.conftest import ASTRONAUT_FACE_XYWH

pytestmark = pytest.mark.timeout(120)

#: The astronaut's head and shoulders around her face, as x, y, w, h in her portrait.
HEAD_XYWH = (120, 10, 200, 220)


def _frame(astronaut_bgr: np.ndarray, at_xy: tuple[int, int], grey: int = 90) -> np.ndarray:
    """A 640x480 frame of one grey with the astronaut's head pasted at ``at_xy``."""
    x, y, w, h = HEAD_XYWH
    frame = np.full((480, 640, 3), grey, np.uint8)
    frame[at_xy[1] : at_xy[1] + h, at_xy[0] : at_xy[0] + w] = astronaut_bgr[y : y + h, x : x + w]
    return frame


def _face_at(at_xy: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where her face lies in a frame from ``_frame``."""
    fx, fy, fw, fh = ASTRONAUT_FACE_XYWH
    return (fx - HEAD_XYWH[0] + at_xy[0], fy - HEAD_XYWH[1] + at_xy[1], fw, fh)


@pytest.fixture
def tracking() -> TrackingDetector:
    detector = build_detector("blazeface_tracking", full_every=50)
    assert isinstance(detector, TrackingDetector)
    return detector


def test_a_moving_face_keeps_its_id_with_one_full_pass(
    astronaut_bgr: np.ndarray, tracking: TrackingDetector
) -> None:
    ids = set()
    for step in range(12):
        at = (40 + 25 * step, 60 + 8 * step)
        (face,) = tracking.detect(_frame(astronaut_bgr, at), "cam")
        assert iou_xywh(face.box_xywh, _face_at(at)) >= 0.4, (step, face)
        assert face.age == step  # frames it was followed before this one
        ids.add(face.track_id)
    assert len(ids) == 1 and None not in ids
    assert (tracking.full_passes, tracking.frames) == (1, 12)


def test_the_full_pass_comes_back_every_full_every_frames(astronaut_bgr: np.ndarray) -> None:
    detector = build_detector("blazeface_tracking", full_every=4)
    assert isinstance(detector, TrackingDetector)
    for step in range(9):
        (face,) = detector.detect(_frame(astronaut_bgr, (100 + 4 * step, 100)), "cam")
        assert face.age == step  # the full pass's face is the followed one, a frame older
    assert detector.full_passes == 3  # frames 0, 4 and 8


def test_a_cut_starts_afresh_and_a_face_that_leaves_is_forgotten(
    astronaut_bgr: np.ndarray, tracking: TrackingDetector
) -> None:
    (first,) = tracking.detect(_frame(astronaut_bgr, (50, 50)), "cam")
    (same,) = tracking.detect(_frame(astronaut_bgr, (60, 50)), "cam")
    assert same.track_id == first.track_id
    # Another scene: a light background and the face elsewhere, even overlapping the old box.
    (after_cut,) = tracking.detect(_frame(astronaut_bgr, (90, 70), grey=220), "cam")
    assert after_cut.track_id != first.track_id
    assert (first.age, same.age, after_cut.age) == (0, 1, 0)
    assert tracking.full_passes == 2
    # She leaves (the background alone): the lost face sends the frame to the full pass.
    assert tracking.detect(np.full((480, 640, 3), 220, np.uint8), "cam") == []
    assert tracking.full_passes == 3
    (back,) = tracking.detect(_frame(astronaut_bgr, (90, 70), grey=220), "cam")
    assert back.track_id not in (first.track_id, after_cut.track_id)


def test_streams_are_followed_apart(astronaut_bgr: np.ndarray, tracking: TrackingDetector) -> None:
    a = [tracking.detect(_frame(astronaut_bgr, (50 + 5 * i, 50)), "a")[0] for i in range(2)]
    b = [tracking.detect(_frame(astronaut_bgr, (300 - 5 * i, 200)), "b")[0] for i in range(2)]
    a.append(tracking.detect(_frame(astronaut_bgr, (60, 50)), "a")[0])
    assert len({face.track_id for face in a}) == 1
    assert len({face.track_id for face in b}) == 1
    assert a[0].track_id != b[0].track_id
    assert tracking.full_passes == 2  # one per stream


def test_a_face_walking_in_between_full_passes_gets_its_own_id(
    astronaut_bgr: np.ndarray, tracking: TrackingDetector
) -> None:
    (alone,) = tracking.detect(_frame(astronaut_bgr, (20, 20)), "cam")
    frame = _frame(astronaut_bgr, (24, 20))
    x, y, w, h = HEAD_XYWH
    frame[240 : 240 + h, 400 : 400 + w] = astronaut_bgr[y : y + h, x : x + w]
    faces = tracking.detect(frame, "cam")
    assert len(faces) == 2
    assert faces[0].track_id == alone.track_id
    assert faces[1].track_id not in (None, alone.track_id)
    assert [face.age for face in faces] == [1, 0]
    assert iou_xywh(faces[1].box_xywh, _face_at((400, 240))) >= 0.4


class _BlindAt(BlazeFaceDetector):
    """The tiled detector, except that the calls numbered in ``blind`` (from 1) find nothing."""

    def __init__(self, blind: set[int]) -> None:
        super().__init__("short", tiled=True)
        self.blind = blind
        self.calls = 0

    def detect(
        self, frame_bgr: np.ndarray, stream_id: str = "", *, sweep: bool = True
    ) -> list[DetectedFace]:
        self.calls += 1
        if self.calls in self.blind:
            return []
        return super().detect(frame_bgr, stream_id, sweep=sweep)


def test_a_face_the_full_pass_misses_once_is_kept_and_twice_is_dropped(
    astronaut_bgr: np.ndarray,
) -> None:
    quick = BlazeFaceDetector("short", tiled=True, second_look=False, min_score=CANDIDATE_SCORE)
    detector = TrackingDetector(_BlindAt({2, 3}), quick, full_every=2)
    found = [detector.detect(_frame(astronaut_bgr, (100 + 3 * i, 100)), "cam") for i in range(5)]
    # Full passes at frames 0, 2 and 4; the second and third see nothing. At frame 2 the face
    # the first found is found again around its last box: kept, the same face, a frame older.
    # At frame 4 the full pass before did not find it itself: it is not asked for again.
    assert [len(faces) for faces in found] == [1, 1, 1, 1, 0]
    assert len({faces[0].track_id for faces in found[:4]}) == 1
    assert [faces[0].age for faces in found[:4]] == [0, 1, 2, 3]
    assert iou_xywh(found[2][0].box_xywh, _face_at((106, 100))) >= 0.4
    assert detector.full_passes == 3


def test_yunet_sweeps_the_first_full_pass_each_cut_and_one_in_sweep_every(
    astronaut_bgr: np.ndarray,
) -> None:
    detector = build_detector("blazeface_tracking", full_every=2, sweep_every=3)
    assert isinstance(detector, TrackingDetector)
    sweep = detector.full_sweep
    assert sweep is not None
    for step in range(12):  # full passes at frames 0, 2, ..., 10: the 1st and 4th swept
        detector.detect(_frame(astronaut_bgr, (100 + 3 * step, 100)), "cam")
    assert (detector.full_passes, sweep.sweeps) == (6, 2)
    detector.detect(_frame(astronaut_bgr, (90, 70), grey=220), "cam")  # a cut
    assert (detector.full_passes, sweep.sweeps) == (7, 3)
    detector.detect(_frame(astronaut_bgr, (90, 70)), "other")  # another stream's first frame
    assert (detector.full_passes, sweep.sweeps) == (8, 4)
    assert sweep.faces_added == 0  # BlazeFace found her every time
    never = build_detector("blazeface_tracking", sweep_every=0)
    assert isinstance(never, TrackingDetector)
    never.detect(_frame(astronaut_bgr, (100, 100)), "cam")
    assert never.full_passes == 1 and never.full_sweep is not None
    assert never.full_sweep.sweeps == 0


def _blind(detector: BlazeFaceDetector, monkeypatch: pytest.MonkeyPatch) -> BlazeFaceDetector:
    """``detector`` with its BlazeFace network finding nothing in any region."""
    nothing = (np.zeros((0, 8), np.float32), np.zeros(0, np.float32))
    monkeypatch.setattr(
        detector.single_pass, "regions", lambda jobs, frame_wh: [nothing] * len(jobs)
    )
    return detector


@pytest.mark.parametrize("full_every", [50, 3])
def test_a_face_only_yunet_finds_is_followed_by_yunet(
    astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch, full_every: int
) -> None:
    """BlazeFace blind: YuNet's sweep finds her at the first full pass; YuNet finds her again
    around her last box in between (full_every 50) and at the full passes that do not sweep
    (full_every 3, sweeping only the first): one face, one id, one sweep."""
    full = _blind(BlazeFaceDetector("short", tiled=True), monkeypatch)
    quick = BlazeFaceDetector("short", tiled=True, second_look=False, min_score=CANDIDATE_SCORE)
    detector = TrackingDetector(
        full, _blind(quick, monkeypatch), full_every=full_every, sweep_every=1000
    )
    ids = set()
    for step in range(10):
        at = (60 + 12 * step, 80 + 4 * step)
        (face,) = detector.detect(_frame(astronaut_bgr, at), "cam")
        assert iou_xywh(face.box_xywh, _face_at(at)) >= 0.4, (step, face)
        assert face.age == step
        ids.add(face.track_id)
    assert len(ids) == 1
    sweep = detector.full_sweep
    assert sweep is not None
    assert (sweep.sweeps, sweep.faces_added, sweep.found_again) == (1, 1, 9)
    assert detector.full_passes == (1 if full_every == 50 else 4)
    # She leaves: YuNet finds no one around her box either, and the full pass finds no one.
    assert detector.detect(np.full((480, 640, 3), 90, np.uint8), "cam") == []


def test_yunet_finds_a_followed_face_again_only_where_it_was_and_no_other_face_is(
    astronaut_bgr: np.ndarray, tracking: TrackingDetector
) -> None:
    frame = _frame(astronaut_bgr, (200, 100))
    (face,) = tracking.detect(frame, "cam")
    x, y, w, h = face.box_xywh
    assert tracking._yunet_again(frame, face.box_xywh, []) is not None
    # A smaller face's box on hers (IoU 0.42): YuNet's square holds her face, not that one.
    small = (x + round(0.175 * w), y + round(0.175 * h), round(0.65 * w), round(0.65 * h))
    assert tracking._yunet_again(frame, small, []) is None
    # Her face is another followed face's already: not this one's.
    assert tracking._yunet_again(frame, face.box_xywh, [face]) is None


def test_without_the_sweep_a_face_blazeface_misses_is_not_found(
    astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _blind(BlazeFaceDetector("short", tiled=True, sweep_every=0), monkeypatch)
    quick = BlazeFaceDetector("short", tiled=True, second_look=False, min_score=CANDIDATE_SCORE)
    detector = TrackingDetector(full, _blind(quick, monkeypatch))
    assert detector.full_sweep is None
    assert detector.detect(_frame(astronaut_bgr, (60, 80)), "cam") == []


def test_a_cut_is_a_change_of_the_whole_picture(astronaut_bgr: np.ndarray) -> None:
    still = thumbnail(_frame(astronaut_bgr, (50, 50)))
    assert not is_cut(still, thumbnail(_frame(astronaut_bgr, (70, 60))))
    assert is_cut(still, thumbnail(_frame(astronaut_bgr, (50, 50), grey=220)))
    assert is_cut(still, thumbnail(astronaut_bgr))


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="full_every"):
        build_detector("blazeface_tracking", full_every=0)
