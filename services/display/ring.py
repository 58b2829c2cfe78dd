"""Matching results to frames by (stream_id, seq), never by arrival order; pure, no I/O."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from shared.messages import EndOfStream, Face, FrameHeader, ResultHeader

__all__ = [
    "FrameEntry",
    "FrameRing",
    "LiveResults",
    "LiveView",
    "MatchCounts",
    "Pair",
    "ResultState",
    "SeqGaps",
    "StreamSummary",
]

Key = tuple[str, int]


@dataclass(frozen=True)
class FrameEntry:
    """A preview frame as received: its header and undecoded JPEG."""

    header: FrameHeader
    jpeg: bytes


@dataclass(frozen=True)
class Pair:
    """A frame and the result computed on it."""

    frame: FrameEntry
    result: ResultHeader


@dataclass
class MatchCounts:
    """What happened to frames and results; all counts only grow."""

    frames: int = 0
    results: int = 0
    matched: int = 0
    #: Frames evicted (or given up on at the end of a stream) without a result.
    missing: int = 0
    #: Results that arrived after their frame was already counted missing.
    late_results: int = 0
    #: Results whose frame never arrived (evicted from the waiting list, or flushed at the end).
    unknown_results: int = 0
    duplicate_results: int = 0
    duplicate_frames: int = 0


@dataclass
class _StreamProgress:
    frames: int = 0
    results: int = 0
    matched: int = 0
    missing: int = 0
    end: EndOfStream | None = None
    end_deadline: float | None = None


@dataclass(frozen=True)
class StreamSummary:
    """A stream that has ended and whose results are all in (or whose grace period ran out)."""

    stream_id: str
    frame_count: int
    frames: int
    results: int
    matched: int
    missing: int
    dropped: int
    timed_out: bool


class _Outcome(Enum):
    MATCHED = "matched"
    MISSING = "missing"
    #: Counted missing, then its result came after all.
    LATE = "late"


class FrameRing:
    """Recent frames and early results, bounded, paired by (stream_id, seq).

    Results may arrive before their frame (they come over another socket), so results wait
    too, in a list as long as the ring. A short memory of keys already settled tells a
    duplicate result from a late one: only the first result of a frame counts (a worker lost
    after sending a result but before capture heard it was done makes a second one). A frame
    is told by its capture time too, so a restarted capture's seq 0 is not a duplicate.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected >= 1, found {capacity}")
        self._capacity = capacity
        self._frames: OrderedDict[Key, FrameEntry] = OrderedDict()
        self._results: OrderedDict[Key, ResultHeader] = OrderedDict()
        self._settled: OrderedDict[Key, tuple[_Outcome, int]] = OrderedDict()
        self._streams: dict[str, _StreamProgress] = {}
        self.counts = MatchCounts()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def waiting_results(self) -> int:
        return len(self._results)

    def _progress(self, stream_id: str) -> _StreamProgress:
        progress = self._streams.get(stream_id)
        if progress is None:
            progress = self._streams[stream_id] = _StreamProgress()
        return progress

    def _settle(self, key: Key, outcome: _Outcome, captured_at_ns: int) -> None:
        self._settled[key] = (outcome, captured_at_ns)
        self._settled.move_to_end(key)
        while len(self._settled) > 4 * self._capacity:
            self._settled.popitem(last=False)

    def _match(self, entry: FrameEntry, result: ResultHeader) -> Pair:
        key = (entry.header.stream_id, entry.header.seq)
        self.counts.matched += 1
        self._progress(key[0]).matched += 1
        self._settle(key, _Outcome.MATCHED, entry.header.captured_at_ns)
        return Pair(entry, result)

    def _evict_frame(self, key: Key) -> None:
        entry = self._frames.pop(key, None)
        self.counts.missing += 1
        self._progress(key[0]).missing += 1
        self._settle(key, _Outcome.MISSING, 0 if entry is None else entry.header.captured_at_ns)

    def _settled_outcome(self, result: ResultHeader) -> _Outcome | None:
        """How the frame of ``result`` was settled; None if not (or it was another frame)."""
        settled = self._settled.get((result.stream_id, result.seq))
        if settled is None or settled[1] != result.captured_at_ns:
            return None
        return settled[0]

    def is_duplicate(self, result: ResultHeader) -> bool:
        """Whether a result for the same frame came before (then ``add_result`` counts it)."""
        key = (result.stream_id, result.seq)
        if key in self._frames:
            return False
        waiting = self._results.get(key)
        if waiting is not None and waiting.captured_at_ns == result.captured_at_ns:
            return True
        return self._settled_outcome(result) in (_Outcome.MATCHED, _Outcome.LATE)

    def add_frame(self, header: FrameHeader, jpeg: bytes) -> Pair | None:
        """Keep a frame; the pair at once if its result came first."""
        key = (header.stream_id, header.seq)
        entry = FrameEntry(header, jpeg)
        self.counts.frames += 1
        self._progress(key[0]).frames += 1
        # A restarted capture counts from seq 0 again: its frames are new, not settled.
        self._settled.pop(key, None)
        waiting = self._results.pop(key, None)
        if waiting is not None:
            self._frames.pop(key, None)
            return self._match(entry, waiting)
        if key in self._frames:
            self.counts.duplicate_frames += 1
            del self._frames[key]
        self._frames[key] = entry
        while len(self._frames) > self._capacity:
            self._evict_frame(next(iter(self._frames)))
        return None

    def add_result(self, result: ResultHeader) -> Pair | None:
        """Pair a result with its frame; None while the frame has not arrived (or never will)."""
        key = (result.stream_id, result.seq)
        self.counts.results += 1
        entry = self._frames.pop(key, None)
        if entry is not None:
            self._progress(key[0]).results += 1
            return self._match(entry, result)
        if self.is_duplicate(result):
            self.counts.duplicate_results += 1
            return None
        self._progress(key[0]).results += 1
        if self._settled_outcome(result) is _Outcome.MISSING:
            self.counts.late_results += 1
            self._settle(key, _Outcome.LATE, result.captured_at_ns)
            return None
        self._results.pop(key, None)  # an earlier run's result, if any, is replaced
        self._results[key] = result
        while len(self._results) > self._capacity:
            self._results.popitem(last=False)
            self.counts.unknown_results += 1
        return None

    def end_stream(self, end: EndOfStream, now_s: float, grace_s: float) -> None:
        """Capture has sent its last frame of ``end.stream_id``; wait ``grace_s`` for results."""
        progress = self._progress(end.stream_id)
        progress.end = end
        progress.end_deadline = now_s + grace_s

    def finished_streams(self, now_s: float) -> list[StreamSummary]:
        """Streams whose results are all in, or whose grace period ran out; each reported once.

        What is still waiting for such a stream is given up on: frames count as missing,
        results as unknown.
        """
        done: list[StreamSummary] = []
        for stream_id, progress in list(self._streams.items()):
            end = progress.end
            if end is None or progress.end_deadline is None:
                continue
            # Frames capture dropped in live mode were never sent to a worker.
            expected = max(0, end.frame_count - end.dropped)
            all_in = progress.results >= expected and not self._has_frames(stream_id)
            timed_out = now_s >= progress.end_deadline
            if not (all_in or timed_out):
                continue
            for key in [key for key in self._frames if key[0] == stream_id]:
                self._evict_frame(key)
            for key in [key for key in self._results if key[0] == stream_id]:
                del self._results[key]
                self.counts.unknown_results += 1
            done.append(
                StreamSummary(
                    stream_id=stream_id,
                    frame_count=end.frame_count,
                    frames=progress.frames,
                    results=progress.results,
                    matched=progress.matched,
                    missing=max(progress.missing, expected - progress.matched),
                    dropped=end.dropped,
                    timed_out=timed_out and not all_in,
                )
            )
            # A looping or restarted source starts afresh.
            self._streams[stream_id] = _StreamProgress()
        return done

    def _has_frames(self, stream_id: str) -> bool:
        return any(key[0] == stream_id for key in self._frames)


class ResultState(Enum):
    """How current the faces drawn on a live frame are."""

    FRESH = "fresh"
    STALE = "stale"
    WAITING = "waiting"


@dataclass(frozen=True)
class LiveView:
    """What to draw on a live frame: faces (empty unless fresh), their state and age."""

    faces: tuple[Face, ...]
    state: ResultState
    age_ms: float | None


class LiveResults:
    """The latest valid result per stream, with a time-to-live by capture time.

    Its probabilities are already smoothed per tracked face by the worker (its tracker)."""

    def __init__(self, ttl_ms: float) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms: expected > 0, found {ttl_ms}")
        self._ttl_ms = ttl_ms
        self._latest: dict[str, ResultHeader] = {}

    def add(self, result: ResultHeader) -> bool:
        """Keep ``result`` if it is valid and newer than the one kept; say whether it was."""
        if result.error is not None:
            return False
        latest = self._latest.get(result.stream_id)
        if latest is not None and result.captured_at_ns < latest.captured_at_ns:
            return False
        self._latest[result.stream_id] = result
        return True

    def view(self, frame: FrameHeader) -> LiveView:
        """The faces to draw on ``frame``: fresh when the result is at most ttl older."""
        latest = self._latest.get(frame.stream_id)
        if latest is None:
            return LiveView((), ResultState.WAITING, None)
        age_ms = max(0.0, (frame.captured_at_ns - latest.captured_at_ns) / 1e6)
        if age_ms > self._ttl_ms:
            return LiveView((), ResultState.STALE, age_ms)
        return LiveView(latest.faces, ResultState.FRESH, age_ms)


class SeqGaps:
    """Frames lost on the way, per stream, from gaps in the seq numbers that arrive in order.

    A seq at or below the last one is a duplicate, unless it was captured later than the last
    frame: then the capture restarted and counts from 0 again, which is no loss.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def missed(self, header: FrameHeader) -> int:
        """How many frames of ``header``'s stream were skipped just before it."""
        last = self._last.get(header.stream_id)
        if last is not None and header.seq <= last[0] and header.captured_at_ns <= last[1]:
            return 0
        gap = header.seq - last[0] - 1 if last is not None and header.seq > last[0] else 0
        self._last[header.stream_id] = (header.seq, header.captured_at_ns)
        return gap
