"""The tracker as tables: stable ids, held labels, expiry, late frames and restarts."""

from __future__ import annotations

import numpy as np
import pytest

from shared.image import iou_matrix_xywh
from shared.labels import EMOTIONS
from stages.tracker import FaceTracker, match_greedy

Box = tuple[int, int, int, int]


def _row(label: str, p: float = 0.9) -> list[float]:
    """Probabilities with ``p`` on ``label`` and the rest spread evenly."""
    row = [(1.0 - p) / (len(EMOTIONS) - 1)] * len(EMOTIONS)
    row[EMOTIONS.index(label)] = p
    return row


def _step(
    tracker: FaceTracker, seq: int, faces: list[tuple[Box, str]], stream: str = "cam0"
) -> list[tuple[int | None, str]]:
    boxes = [box for box, _ in faces]
    rows = np.array([_row(label) for _, label in faces], np.float32).reshape(len(faces), 7)
    tracked = tracker.update(stream, seq, 1_000 + seq, boxes, rows)
    return [(face.track_id, EMOTIONS[face.label_index]) for face in tracked]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),
        ((0, 0, 10, 10), (20, 20, 5, 5), 0.0),
        ((0, 0, 10, 10), (0, 0, 0, 0), 0.0),
    ],
)
def test_iou_matrix(a: Box, b: Box, expected: float) -> None:
    iou = iou_matrix_xywh(np.array([a], float), np.array([b], float))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected)


def test_greedy_matching_takes_the_highest_iou_first() -> None:
    # Track 0 overlaps both detections; detection 1 is its best, so detection 0 goes to track 1.
    iou = np.array([[0.5, 0.9], [0.4, 0.0]])
    assert match_greedy(iou, 0.3) == {1: 0, 0: 1}
    assert match_greedy(iou, 0.6) == {1: 0}
    assert match_greedy(np.zeros((0, 2)), 0.3) == {}


@pytest.mark.parametrize(
    ("frames", "same_id"),
    [
        ([[((100, 100, 50, 50), "happy")]] * 4, True),
        ([[((100, 100, 50, 50), "happy")], [((108, 104, 50, 52), "happy")]], True),
        ([[((100, 100, 50, 50), "happy")], [((300, 100, 50, 50), "happy")]], False),
    ],
    ids=["still", "moved-a-little", "jumped-elsewhere"],
)
def test_same_face_keeps_its_id(frames: list[list[tuple[Box, str]]], same_id: bool) -> None:
    tracker = FaceTracker(smoothing=0.0, label_hold_frames=1)
    ids = [_step(tracker, seq, faces)[0][0] for seq, faces in enumerate(frames)]
    assert all(track_id is not None for track_id in ids)
    assert (len(set(ids)) == 1) is same_id


def test_two_faces_keep_distinct_ids_whatever_their_order() -> None:
    tracker = FaceTracker(smoothing=0.0, label_hold_frames=1)
    left, right = (50, 50, 40, 40), (300, 60, 40, 40)
    first = _step(tracker, 0, [(left, "happy"), (right, "sad")])
    second = _step(tracker, 1, [((302, 62, 40, 40), "sad"), ((52, 50, 40, 40), "happy")])
    assert first[0][0] != first[1][0]
    assert second[0][0] == first[1][0] and second[1][0] == first[0][0]


@pytest.mark.parametrize(
    ("hold", "labels", "expected"),
    [
        (3, ["happy", "happy", "sad", "sad", "sad", "sad"], ["happy"] * 4 + ["sad"] * 2),
        (3, ["happy", "sad", "sad", "happy", "sad", "sad"], ["happy"] * 6),
        (1, ["happy", "sad", "happy"], ["happy", "sad", "happy"]),
        (2, ["angry", "fear", "fear", "fear"], ["angry", "angry", "fear", "fear"]),
    ],
    ids=["hold-3", "flicker-never-holds", "hold-1-follows", "hold-2"],
)
def test_label_changes_only_after_it_leads_for_hold_frames(
    hold: int, labels: list[str], expected: list[str]
) -> None:
    tracker = FaceTracker(smoothing=0.0, label_hold_frames=hold)
    box = (100, 100, 60, 60)
    reported = [_step(tracker, seq, [(box, label)])[0][1] for seq, label in enumerate(labels)]
    assert reported == expected


def test_smoothing_blends_the_probabilities_and_keeps_score_consistent() -> None:
    tracker = FaceTracker(smoothing=0.5, label_hold_frames=1)
    box = (0, 0, 50, 50)
    happy = np.array([_row("happy", 1.0)], np.float32)
    sad = np.array([_row("sad", 1.0)], np.float32)
    tracker.update("s", 0, 0, [box], happy)
    face = tracker.update("s", 1, 1, [box], sad)[0]
    assert face.probabilities[EMOTIONS.index("happy")] == pytest.approx(0.5)
    assert face.probabilities[EMOTIONS.index("sad")] == pytest.approx(0.5)
    assert face.probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("max_missed", "gone_after"), [(0, 1), (2, 3), (5, 6)])
def test_a_vanished_track_expires(max_missed: int, gone_after: int) -> None:
    tracker = FaceTracker(max_missed=max_missed)
    box = (10, 10, 40, 40)
    first_id = _step(tracker, 0, [(box, "happy")])[0][0]
    for seq in range(1, gone_after):
        _step(tracker, seq, [])
        assert tracker.track_count("cam0") == 1, f"expired after {seq} empty frames"
    _step(tracker, gone_after, [])
    assert tracker.track_count("cam0") == 0
    assert _step(tracker, gone_after + 1, [(box, "happy")])[0][0] != first_id


def test_streams_do_not_share_tracks() -> None:
    tracker = FaceTracker()
    box = (10, 10, 40, 40)
    a = _step(tracker, 0, [(box, "happy")], stream="a")[0][0]
    b = _step(tracker, 0, [(box, "happy")], stream="b")[0][0]
    assert a != b


def test_a_late_frame_is_matched_but_does_not_change_the_tracks() -> None:
    tracker = FaceTracker(smoothing=0.0, label_hold_frames=1, max_missed=0)
    box = (10, 10, 40, 40)
    track_id = _step(tracker, 5, [(box, "happy")])[0][0]
    # seq 3 arrives after seq 5 (another worker was slower): it reports the track's label ...
    assert _step(tracker, 3, [(box, "sad")]) == [(track_id, "happy")]
    # ... and an empty late frame does not expire the track (max_missed=0 would).
    _step(tracker, 4, [])
    assert tracker.track_count("cam0") == 1
    assert _step(tracker, 6, [(box, "sad")]) == [(track_id, "sad")]


def test_a_restarted_capture_starts_the_stream_afresh() -> None:
    tracker = FaceTracker(smoothing=0.0, label_hold_frames=1)
    box = (10, 10, 40, 40)
    rows = np.array([_row("happy")], np.float32)
    tracker.update("s", 500, 1_000, [box], rows)
    # seq back to 0 but captured later: a new run of the capture, not a late frame.
    face = tracker.update("s", 0, 2_000, [box], np.array([_row("sad")], np.float32))[0]
    assert EMOTIONS[face.label_index] == "sad"
    face = tracker.update("s", 1, 2_001, [box], np.array([_row("fear")], np.float32))[0]
    assert EMOTIONS[face.label_index] == "fear", "frames after the restart were ignored"


@pytest.mark.parametrize(
    "kwargs",
    [{"iou_threshold": 0.0}, {"smoothing": 1.0}, {"max_missed": -1}, {"label_hold_frames": 0}],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="expected"):
        FaceTracker(**kwargs)  # type: ignore[arg-type]


def test_the_detectors_identities_keep_two_people_apart_at_the_same_place() -> None:
    """A new face where another was (a cut, or one person leaving as another comes in):
    with the detector's identities its label starts afresh; by overlap alone it would inherit
    the held label of the face before."""
    box = (100, 100, 80, 80)
    happy = np.array([_row("happy")], np.float32)
    sad = np.array([_row("sad")], np.float32)
    by_identity, by_overlap = FaceTracker(label_hold_frames=3), FaceTracker(label_hold_frames=3)
    for seq in range(3):
        first = by_identity.update("s", seq, seq, [box], happy, identities=[7])[0]
        by_overlap.update("s", seq, seq, [box], happy)
    newcomer = by_identity.update("s", 3, 3, [box], sad, identities=[8])[0]
    inherited = by_overlap.update("s", 3, 3, [box], sad)[0]
    assert EMOTIONS[newcomer.label_index] == "sad"
    assert newcomer.track_id != first.track_id
    assert EMOTIONS[inherited.label_index] == "happy"
    # The same identity elsewhere in the frame is the same track.
    moved = by_identity.update("s", 4, 4, [(400, 300, 80, 80)], sad, identities=[8])[0]
    assert moved.track_id == newcomer.track_id


def test_identities_must_match_the_boxes() -> None:
    with pytest.raises(ValueError, match="identity per box"):
        FaceTracker().update("s", 0, 0, [(0, 0, 10, 10)], np.array([_row("sad")]), identities=[])


def test_smoothed_gives_the_track_of_a_detector_identity_in_its_stream() -> None:
    tracker = FaceTracker(smoothing=0.5)
    happy = np.array([_row("happy")], np.float32)
    sad = np.array([_row("sad")], np.float32)
    tracker.update("s", 0, 0, [(0, 0, 50, 50)], happy, identities=[7])
    tracker.update("s", 1, 1, [(2, 0, 50, 50)], sad, identities=[7])
    both = (happy[0] + sad[0]) / 2
    kept = tracker.smoothed("s", 7)
    assert kept is not None
    np.testing.assert_allclose(kept, both, atol=1e-6)
    kept[:] = 0  # a copy: the track is not changed through it
    np.testing.assert_allclose(tracker.smoothed("s", 7), both, atol=1e-6)  # type: ignore[arg-type]
    assert tracker.smoothed("s", 8) is None
    assert tracker.smoothed("other", 7) is None
    # Fed its own smoothed row, the track stays where it was.
    tracker.update("s", 2, 2, [(4, 0, 50, 50)], np.array([both]), identities=[7])
    np.testing.assert_allclose(tracker.smoothed("s", 7), both, atol=1e-6)  # type: ignore[arg-type]
