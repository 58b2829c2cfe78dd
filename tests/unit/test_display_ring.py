"""Display matching: results pair with frames by (stream_id, seq), whatever the arrival order."""

from __future__ import annotations

import dataclasses

import pytest

from services.display.ring import FrameRing, LiveResults, ResultState, SeqGaps
from shared.messages import EndOfStream, Face, FrameHeader, ResultHeader

pytestmark = pytest.mark.timeout(10)

FRAME_NS = 66_000_000  # 15 fps


def frame(seq: int, stream_id: str = "cam0") -> FrameHeader:
    return FrameHeader(
        stream_id=stream_id, seq=seq, captured_at_ns=1_000 + seq * FRAME_NS, width=64, height=48
    )


def result(
    seq: int,
    stream_id: str = "cam0",
    faces: tuple[Face, ...] = (),
    error: str | None = None,
) -> ResultHeader:
    captured = 1_000 + seq * FRAME_NS
    return ResultHeader(
        stream_id=stream_id,
        seq=seq,
        captured_at_ns=captured,
        worker_id="w1",
        model_version="test",
        faces=faces,
        error=error,
        completed_at_ns=captured + 1,
    )


def face(label_index: int, box: tuple[int, int, int, int] = (10, 10, 20, 20)) -> Face:
    probabilities = [0.0] * 7
    probabilities[label_index] = 1.0
    return Face.from_probabilities(box, probabilities)


def play(ring: FrameRing, events: list[str]) -> list[int]:
    """Feed 'f3' (frame seq 3) / 'r3' (result seq 3); the seqs of the pairs, in emit order."""
    pairs = []
    for event in events:
        kind, seq = event[0], int(event[1:])
        pair = ring.add_frame(frame(seq), b"jpeg") if kind == "f" else ring.add_result(result(seq))
        if pair is not None:
            assert pair.frame.header.seq == pair.result.seq == seq
            pairs.append(seq)
    return pairs


@pytest.mark.parametrize(
    ("capacity", "events", "pairs", "counts"),
    [
        (
            8,
            ["f0", "r0", "f1", "r1", "f2", "r2"],
            [0, 1, 2],
            {"frames": 3, "results": 3, "matched": 3},
        ),
        (
            8,
            ["f0", "f1", "f2", "r2", "r0", "r1"],
            [2, 0, 1],
            {"frames": 3, "results": 3, "matched": 3},
        ),
        (
            8,
            ["r1", "f0", "f1", "r0"],
            [1, 0],
            {"frames": 2, "results": 2, "matched": 2},
        ),
        (
            2,
            ["f0", "f1", "f2", "f3", "r2", "r3"],
            [2, 3],
            {"frames": 4, "results": 2, "matched": 2, "missing": 2},
        ),
        (
            2,
            ["f0", "f1", "f2", "r0"],
            [],
            {"frames": 3, "results": 1, "missing": 1, "late_results": 1},
        ),
        (
            8,
            ["f0", "r0", "r0", "f1", "r1"],
            [0, 1],
            {"frames": 2, "results": 3, "matched": 2, "duplicate_results": 1},
        ),
        (
            8,
            ["r5", "r5", "f5"],
            [5],
            {"frames": 1, "results": 2, "matched": 1, "duplicate_results": 1},
        ),
        (
            2,
            ["r7", "r8", "r9"],
            [],
            {"results": 3, "unknown_results": 1},
        ),
    ],
    ids=[
        "in-order",
        "out-of-order",
        "result-before-frame",
        "missing-evicted",
        "result-for-evicted",
        "duplicate-result",
        "duplicate-early-result",
        "unknown-results-bounded",
    ],
)
def test_matching_table(
    capacity: int, events: list[str], pairs: list[int], counts: dict[str, int]
) -> None:
    ring = FrameRing(capacity)
    assert play(ring, events) == pairs
    expected = {field.name: 0 for field in dataclasses.fields(ring.counts)} | counts
    assert dataclasses.asdict(ring.counts) == expected
    assert len(ring) <= capacity
    assert ring.waiting_results <= capacity


def test_streams_do_not_cross() -> None:
    ring = FrameRing(8)
    assert ring.add_frame(frame(0, "cam0"), b"a") is None
    assert ring.add_result(result(0, "cam1")) is None
    pair = ring.add_result(result(0, "cam0"))
    assert pair is not None and pair.frame.jpeg == b"a"
    assert ring.counts.matched == 1


def test_restarted_capture_reuses_seqs() -> None:
    ring = FrameRing(8)
    play(ring, ["f0", "r0"])
    # Capture restarted: seq 0 again is a new frame, and its result a new match.
    assert play(ring, ["f0", "r0"]) == [0]
    assert ring.counts.duplicate_results == 0


@pytest.mark.parametrize(
    ("events", "now_s", "summary"),
    [
        (["f0", "f1", "f2", "r0", "r1", "r2"], 0.0, (3, 3, 0, False)),
        (["f0", "f1", "f2", "r0", "r2"], 0.0, None),
        (["f0", "f1", "f2", "r0", "r2"], 10.0, (3, 2, 1, True)),
    ],
    ids=["all-in", "waiting", "grace-ran-out"],
)
def test_end_of_stream(
    events: list[str], now_s: float, summary: tuple[int, int, int, bool] | None
) -> None:
    ring = FrameRing(8)
    play(ring, events)
    ring.end_stream(EndOfStream(stream_id="cam0", frame_count=3), now_s=0.0, grace_s=5.0)
    done = ring.finished_streams(now_s)
    if summary is None:
        assert done == []
        return
    assert len(done) == 1
    got = done[0]
    assert (got.frames, got.matched, got.missing, got.timed_out) == summary
    assert ring.finished_streams(now_s) == []
    assert len(ring) == 0


def test_live_results_fresh_stale_waiting() -> None:
    live = LiveResults(ttl_ms=500)
    assert live.view(frame(0)).state is ResultState.WAITING
    assert live.add(result(1, faces=(face(3),)))
    view = live.view(frame(3))
    assert view.state is ResultState.FRESH and view.faces[0].label == "happy"
    # 10 frames at 66 ms after the result's frame: older than the TTL.
    stale = live.view(frame(11))
    assert stale.state is ResultState.STALE and stale.faces == ()
    assert stale.age_ms == pytest.approx(10 * 66.0)


def test_live_results_keep_newest_valid() -> None:
    live = LiveResults(ttl_ms=500)
    assert live.add(result(5, faces=(face(3),)))
    assert not live.add(result(4, faces=(face(0),))), "an older result must not replace a newer"
    assert not live.add(result(6, error="corrupt JPEG")), "an error result is not valid"
    assert live.view(frame(6)).faces[0].label == "happy"
    assert live.view(frame(0, "cam1")).state is ResultState.WAITING


@pytest.mark.parametrize(
    ("events", "duplicates"),
    [
        (["f1", "r1", "r1"], [False, False, True]),  # matched, then a second result
        (["r1", "r1", "f1"], [False, True, False]),  # two results before the frame
        (["f1", "r1", "r1", "r1"], [False, False, True, True]),
    ],
    ids=["after-match", "both-early", "three"],
)
def test_is_duplicate_tells_the_second_result_of_a_frame(
    events: list[str], duplicates: list[bool]
) -> None:
    ring = FrameRing(8)
    found = []
    for event in events:
        seq = int(event[1:])
        if event[0] == "f":
            found.append(False)
            ring.add_frame(frame(seq), b"jpeg")
        else:
            found.append(ring.is_duplicate(result(seq)))
            ring.add_result(result(seq))
    assert found == duplicates
    assert ring.counts.duplicate_results == sum(duplicates)


def test_a_late_result_counts_once_and_its_repeat_is_a_duplicate() -> None:
    ring = FrameRing(1)
    ring.add_frame(frame(0), b"jpeg")
    ring.add_frame(frame(1), b"jpeg")  # evicts seq 0: missing
    assert not ring.is_duplicate(result(0))
    assert ring.add_result(result(0)) is None
    assert ring.is_duplicate(result(0))
    ring.add_result(result(0))
    assert (ring.counts.late_results, ring.counts.duplicate_results) == (1, 1)


def test_a_restarted_capture_reusing_a_seq_is_not_a_duplicate() -> None:
    ring = FrameRing(8)
    ring.add_frame(frame(0), b"jpeg")
    ring.add_result(result(0))
    again = result(0).model_copy(update={"captured_at_ns": 9_999_999_999})
    assert not ring.is_duplicate(again), "same seq, later capture time: a new frame"
    ring.add_result(again)
    assert ring.counts.duplicate_results == 0


def test_seq_gaps_count_lost_frames_per_stream() -> None:
    gaps = SeqGaps()
    # The first frame seen sets the start: frames before the display connected are no loss.
    assert [gaps.missed(frame(seq)) for seq in (5, 6, 9, 10)] == [0, 0, 2, 0]
    assert [gaps.missed(frame(seq, "cam1")) for seq in (0, 4)] == [0, 3]
    # A duplicate is no loss and does not move the mark.
    assert gaps.missed(frame(6)) == 0
    assert gaps.missed(frame(12)) == 1


def test_seq_gaps_restarted_capture_is_no_loss() -> None:
    gaps = SeqGaps()
    assert gaps.missed(frame(40)) == 0
    restarted = frame(0).model_copy(update={"captured_at_ns": frame(41).captured_at_ns})
    assert gaps.missed(restarted) == 0
    later = frame(3).model_copy(update={"captured_at_ns": frame(44).captured_at_ns})
    assert gaps.missed(later) == 2
