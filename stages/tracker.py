"""Stable labels per stream: IoU tracks, smoothed probabilities and a label with hysteresis.

Pure numpy. Several workers may serve one stream, so a worker sees a stream's frames with
gaps and possibly out of order: only a frame newer (by ``seq``) than the newest seen updates
the tracks; an older one is matched against them read-only. Smoothing therefore runs per
worker over the frames that worker got (the display smooths again in live mode).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from shared.image import iou_matrix_xywh
from shared.labels import NUM_EMOTIONS

if TYPE_CHECKING:
    from .settings import FaceSettings

__all__ = ["FaceTracker", "TrackedFace", "match_greedy", "tracker_for"]

#: Streams whose state is kept; the least recently updated beyond this is forgotten.
MAX_STREAMS: Final = 256

BoxesXYWH = npt.NDArray[np.float64]
ProbabilityRows = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TrackedFace:
    """What to report for one detected face: its track, probabilities and stable label."""

    track_id: int | None
    probabilities: npt.NDArray[np.float32]
    label_index: int


@dataclass
class _Track:
    track_id: int
    box_xywh: tuple[int, int, int, int]
    smoothed: npt.NDArray[np.float32]
    label_index: int
    candidate: int = -1
    candidate_frames: int = 0
    missed: int = 0
    #: The detector's identity of the face, where the detector follows faces.
    identity: int | None = None


@dataclass
class _Stream:
    newest_seq: int
    newest_captured_ns: int
    tracks: list[_Track] = field(default_factory=list)


def match_greedy(iou: npt.NDArray[np.float64], threshold: float) -> dict[int, int]:
    """Column (detection) -> row (track) pairs, highest IoU first, each used once."""
    pairs: dict[int, int] = {}
    if iou.size == 0:
        return pairs
    used_rows: set[int] = set()
    order = np.argsort(-iou, axis=None, kind="stable")
    for flat in order.tolist():
        row, col = divmod(int(flat), iou.shape[1])
        if iou[row, col] < threshold:
            break
        if row in used_rows or col in pairs:
            continue
        pairs[col] = row
        used_rows.add(row)
    return pairs


class FaceTracker:
    """Tracks per stream; ``update`` gives each face of a frame its track and stable label."""

    def __init__(
        self,
        *,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
        smoothing: float = 0.5,
        label_hold_frames: int = 3,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold: expected within (0, 1], found {iou_threshold}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing: expected within [0, 1), found {smoothing}")
        if max_missed < 0 or label_hold_frames < 1 or max_streams < 1:
            raise ValueError(
                "expected max_missed >= 0, label_hold_frames >= 1 and max_streams >= 1, found "
                f"{max_missed}, {label_hold_frames} and {max_streams}"
            )
        self._iou_threshold = iou_threshold
        self._max_missed = max_missed
        self._smoothing = smoothing
        self._hold = label_hold_frames
        self._max_streams = max_streams
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._next_id = 1

    def track_count(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id)
        return len(stream.tracks) if stream else 0

    def smoothed(self, stream_id: str, identity: int) -> npt.NDArray[np.float32] | None:
        """The smoothed probabilities (7,) of the stream's track of the detector's face
        ``identity``; None where no track follows that face."""
        stream = self._streams.get(stream_id)
        track = next((t for t in stream.tracks if t.identity == identity), None) if stream else None
        return None if track is None else track.smoothed.copy()

    def update(
        self,
        stream_id: str,
        seq: int,
        captured_at_ns: int,
        boxes_xywh: Sequence[tuple[int, int, int, int]],
        probabilities: ProbabilityRows,
        *,
        identities: Sequence[int | None] | None = None,
    ) -> list[TrackedFace]:
        """Match one frame's faces (boxes and probability rows (N, 7)) to the stream's tracks:
        by the detector's ``identities`` where given (a face the detector calls new starts a
        new track even where another face was), else by the boxes' overlap."""
        if identities is not None and len(identities) != len(boxes_xywh):
            raise ValueError(
                f"expected one identity per box ({len(boxes_xywh)}), found {len(identities)}"
            )
        if len(boxes_xywh) != len(probabilities):
            raise ValueError(
                f"expected one probability row per box ({len(boxes_xywh)}), "
                f"found {len(probabilities)}"
            )
        rows = np.asarray(probabilities, dtype=np.float32).reshape(len(boxes_xywh), NUM_EMOTIONS)
        stream = self._streams.get(stream_id)
        # A lower seq captured later is a restarted capture, not a late frame: start afresh.
        if (
            stream is not None
            and seq < stream.newest_seq
            and captured_at_ns > stream.newest_captured_ns
        ):
            stream = None
        if stream is not None and seq <= stream.newest_seq:
            return self._peek(stream, boxes_xywh, rows, identities)
        if stream is None:
            stream = _Stream(newest_seq=seq, newest_captured_ns=captured_at_ns)
            self._streams[stream_id] = stream
        stream.newest_seq = seq
        stream.newest_captured_ns = captured_at_ns
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)
        return self._advance(stream, boxes_xywh, rows, identities)

    def _match(
        self,
        tracks: list[_Track],
        boxes_xywh: Sequence[tuple[int, int, int, int]],
        identities: Sequence[int | None] | None,
    ) -> dict[int, int]:
        """Detection index -> track index."""
        if not tracks or not boxes_xywh:
            return {}
        if identities is not None and all(i is not None for i in identities):
            rows = {track.identity: row for row, track in enumerate(tracks)}
            return {col: rows[i] for col, i in enumerate(identities) if i in rows}
        iou = iou_matrix_xywh(
            np.array([t.box_xywh for t in tracks], np.float64),
            np.array(boxes_xywh, np.float64),
        )
        return match_greedy(iou, self._iou_threshold)

    def _blend(self, track: _Track, row: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        s = self._smoothing
        return (s * track.smoothed + (1.0 - s) * row).astype(np.float32)

    def _advance(
        self,
        stream: _Stream,
        boxes_xywh: Sequence[tuple[int, int, int, int]],
        rows: ProbabilityRows,
        identities: Sequence[int | None] | None,
    ) -> list[TrackedFace]:
        pairs = self._match(stream.tracks, boxes_xywh, identities)
        matched_tracks = set(pairs.values())
        kept = [
            track
            for index, track in enumerate(stream.tracks)
            if index in matched_tracks or track.missed < self._max_missed
        ]
        for index, track in enumerate(stream.tracks):
            if index not in matched_tracks:
                track.missed += 1
        out: list[TrackedFace] = []
        born: list[_Track] = []
        for col, box in enumerate(boxes_xywh):
            row = rows[col]
            if col in pairs:
                track = stream.tracks[pairs[col]]
                track.box_xywh = box
                track.smoothed = self._blend(track, row)
                track.missed = 0
                self._hold_label(track)
            else:
                track = _Track(
                    track_id=self._next_id,
                    box_xywh=box,
                    smoothed=row.astype(np.float32),
                    label_index=int(np.argmax(row)),
                    identity=identities[col] if identities is not None else None,
                )
                self._next_id += 1
                born.append(track)
            out.append(TrackedFace(track.track_id, track.smoothed.copy(), track.label_index))
        stream.tracks = kept + born
        return out

    def _hold_label(self, track: _Track) -> None:
        """Change the label only once another class led the smoothed row for ``hold`` frames."""
        top = int(np.argmax(track.smoothed))
        if top == track.label_index:
            track.candidate, track.candidate_frames = -1, 0
            return
        if top == track.candidate:
            track.candidate_frames += 1
        else:
            track.candidate, track.candidate_frames = top, 1
        if track.candidate_frames >= self._hold:
            track.label_index = top
            track.candidate, track.candidate_frames = -1, 0

    def _peek(
        self,
        stream: _Stream,
        boxes_xywh: Sequence[tuple[int, int, int, int]],
        rows: ProbabilityRows,
        identities: Sequence[int | None] | None,
    ) -> list[TrackedFace]:
        """A late frame: report what the tracks say without changing them."""
        pairs = self._match(stream.tracks, boxes_xywh, identities)
        out: list[TrackedFace] = []
        for col in range(len(boxes_xywh)):
            row = rows[col]
            if col in pairs:
                track = stream.tracks[pairs[col]]
                blended = self._blend(track, row)
                out.append(TrackedFace(track.track_id, blended, track.label_index))
            else:
                out.append(TrackedFace(None, row.astype(np.float32), int(np.argmax(row))))
        return out


def tracker_for(settings: FaceSettings) -> FaceTracker:
    """The worker's face tracker (smoothing and label hold) as its settings say."""
    return FaceTracker(
        iou_threshold=settings.track_iou,
        max_missed=settings.track_max_missed,
        smoothing=settings.smoothing,
        label_hold_frames=settings.label_hold_frames,
    )
