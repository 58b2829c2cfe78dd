"""Batching across frames: every face's probabilities go back to its own frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from shared.image import SizeHW
from shared.labels import NUM_EMOTIONS
from shared.messages import FrameHeader
from stages import batching
from stages.batching import classify_frames
from stages.faces import PreparedFrame
from stages.views import View


class BrightnessClassifier:
    """Writes each face's mean brightness (0..1) into its first probability."""

    version = "brightness"
    input_hw: SizeHW = (48, 48)

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.views: list[View] = []

    def classify(
        self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
    ) -> npt.NDArray[np.float32]:
        self.batches.append(len(faces_gray))
        self.views += list(views or [])
        out = np.zeros((len(faces_gray), NUM_EMOTIONS), np.float32)
        out[:, 0] = faces_gray.reshape(len(faces_gray), -1).mean(axis=1) / 255.0
        out[:, -1] = 1.0 - out[:, 0]
        return out


def prepared(
    stream_id: str,
    seq: int,
    levels: list[int],
    track_ids: tuple[int | None, ...] = (),
    ages: tuple[int, ...] = (),
) -> PreparedFrame:
    """A frame whose faces are uniform squares of the given gray levels."""
    faces = np.zeros((len(levels), 48, 48, 1), np.uint8)
    for index, level in enumerate(levels):
        faces[index] = level
    header = FrameHeader(stream_id=stream_id, seq=seq, captured_at_ns=1, width=640, height=480)
    return PreparedFrame(
        header=header,
        started_ns=0,
        boxes_xywh=[(10 * i, 0, 10, 10) for i in range(len(levels))],
        faces_gray=faces,
        track_ids=track_ids,
        ages=ages,
    )


def test_the_time_is_the_one_model_call_and_zero_without_faces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_000_000_000]

    class Clock:
        @staticmethod
        def perf_counter_ns() -> int:
            return now[0]

    class SevenMsClassifier(BrightnessClassifier):
        def classify(
            self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
        ) -> npt.NDArray[np.float32]:
            now[0] += 7_000_000
            return super().classify(faces_gray, views)

    monkeypatch.setattr(batching, "time", Clock)
    classifier = SevenMsClassifier()
    _, classify_ms, seen = classify_frames([prepared("cam0", 0, [10, 20])], classifier)
    assert seen == 2
    assert classify_ms == 7.0
    _, classify_ms, _ = classify_frames([prepared("cam0", 1, [])], classifier)
    assert classify_ms == 0.0 and classifier.batches == [2]


@pytest.mark.parametrize(
    "frames",
    [
        [("a", 0, [10, 20, 30]), ("b", 0, []), ("a", 1, [200]), ("b", 1, [50, 60, 70])],
        [("a", 0, []), ("a", 1, [255])],
        [("a", 0, [1]), ("b", 7, [2]), ("c", 3, [3])],
        [("b", 4, [90, 91, 92])],
    ],
    ids=["mixed-0-1-3", "empty-first", "three-streams", "one-frame"],
)
def test_each_face_gets_its_own_probabilities(
    frames: list[tuple[str, int, list[int]]],
) -> None:
    classifier = BrightnessClassifier()
    batch = [prepared(stream, seq, levels) for stream, seq, levels in frames]
    rows, _, _ = classify_frames(batch, classifier)
    assert classifier.batches == [sum(len(levels) for _, _, levels in frames)], "not one call"
    assert len(rows) == len(frames)
    for (_, _, levels), frame_rows in zip(frames, rows, strict=True):
        assert frame_rows.shape == (len(levels), NUM_EMOTIONS)
        np.testing.assert_allclose(frame_rows[:, 0], np.array(levels) / 255.0, atol=1e-6)


def test_no_faces_means_no_call_and_no_time() -> None:
    classifier = BrightnessClassifier()
    rows, classify_ms, _ = classify_frames([prepared("a", 0, []), prepared("b", 0, [])], classifier)
    assert classifier.batches == []
    assert classify_ms == 0.0
    assert [r.shape for r in rows] == [(0, NUM_EMOTIONS), (0, NUM_EMOTIONS)]


def test_each_face_is_seen_as_the_mirror_policy_chooses_from_its_track() -> None:
    batch = [
        prepared("a", 0, [10, 20], track_ids=(1, 2), ages=(0, 3)),  # born; followed, odd
        prepared("b", 0, [30]),  # a detector without tracks
        prepared("a", 1, [40, 50], track_ids=(1, 2), ages=(1, 4)),
    ]
    classifier = BrightnessClassifier()
    classify_frames(batch, classifier)  # "alternate", the default
    assert classifier.views == ["both", "mirror", "both", "mirror", "face"]
    for policy, expected in (("always", "both"), ("never", "face")):
        classifier = BrightnessClassifier()
        classify_frames(batch, classifier, policy)
        assert classifier.views == [expected] * 5


def test_a_followed_face_not_due_keeps_what_its_track_carries() -> None:
    carried_row = np.full(NUM_EMOTIONS, 1 / NUM_EMOTIONS, np.float32)
    asked: list[tuple[str, int]] = []

    def carried(stream_id: str, identity: int) -> npt.NDArray[np.float32] | None:
        asked.append((stream_id, identity))
        return carried_row if identity == 2 else None  # nothing follows face 3 any more

    batch = [
        # born; followed and due (age 2); followed, not due (age 3); lost by the tracker
        prepared("a", 5, [10, 20, 30, 40], track_ids=(1, 2, 2, 3), ages=(0, 2, 3, 1)),
        prepared("b", 0, [50]),  # a detector without tracks: always seen
    ]
    classifier = BrightnessClassifier()
    rows, _, seen = classify_frames(batch, classifier, "always", every=2, carried=carried)
    assert seen == 4
    assert classifier.batches == [4], "the face not due was classified"
    assert asked == [("a", 2), ("a", 3)]
    np.testing.assert_allclose(rows[0][2], carried_row)
    np.testing.assert_allclose(rows[0][[0, 1, 3], 0], np.array([10, 20, 40]) / 255.0, atol=1e-6)
    np.testing.assert_allclose(rows[1][:, 0], [50 / 255.0], atol=1e-6)
    # Without ``carried`` (no tracker to keep probabilities) every face is seen.
    classifier = BrightnessClassifier()
    classify_frames(batch, classifier, "always", every=2)
    assert classifier.batches == [5]


def test_when_no_face_is_due_the_model_is_not_called() -> None:
    def carried(stream_id: str, identity: int) -> npt.NDArray[np.float32]:
        return np.eye(NUM_EMOTIONS, dtype=np.float32)[identity]

    classifier = BrightnessClassifier()
    batch = [prepared("a", 3, [10, 20], track_ids=(4, 5), ages=(1, 3))]
    rows, classify_ms, seen = classify_frames(batch, classifier, every=2, carried=carried)
    assert classifier.batches == [] and classify_ms == 0.0 and seen == 0
    assert rows[0].argmax(axis=1).tolist() == [4, 5]
