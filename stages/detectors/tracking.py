"""Detect once, then track: the full detector now and then, a face's last place in between.

A stream's first frame, every ``full_every``-th frame after it, a frame that differs from the
last one as a cut does (``is_cut``), a frame in which a followed face is not found again, and
one in which an unsure candidate (under ``SURE_SCORE``) turns up that no followed face explains
get the full pass (BlazeFace on the whole frame and its tiles, with second looks: every face
from 60 px up). In between, one pass on the whole frame and one on a tile of the full pass
(the next each frame) find the faces, side by side; a followed face they miss is looked for
in the square around its last box (one model pass a face, ``find_again``).

A followed face that the full pass misses stays if the full pass before found it and one pass
on its surroundings finds it again at ``KEEP_SCORE`` or more: the frame before is evidence too.

YuNet sweeps the whole frame at a stream's first full pass, after a cut and at one full pass in
``sweep_every`` (``yunet_sweep``), for the faces BlazeFace does not find at any scale. Such a
face is followed by YuNet: where BlazeFace does not find a followed face again around its last
box, YuNet is asked there (one pass on a 128 px square), between full passes and at them.

Faces carry identity (``DetectedFace.track_id``): a face followed keeps its id, a face the
full pass finds where no followed face was gets a new one, and after a cut every face does,
so that the labels' smoothing downstream never mixes two people.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field

from shared.image import ImageU8, iou_matrix_xywh, shrink

from ..tracker import match_greedy
from .base import DetectedFace
from .blazeface import BlazeFaceDetector
from .blazeface_variants import BLAZEFACE_FRAMING, BlazeFaceConfig
from .registry import register
from .second_look import CANDIDATE_SCORE, SURE_SCORE
from .tiler import TILE_FRACTIONS, tile_regions
from .yunet_sweep import SWEEP_EVERY, YuNetSweep

__all__ = [
    "KEEP_SCORE",
    "THUMB_WH",
    "TrackingConfig",
    "TrackingDetector",
    "find_again",
    "is_cut",
    "thumbnail",
]

#: The size frames are compared at: a cut changes the whole picture, a moving face a corner.
THUMB_WH: Final = (32, 24)
#: Mean absolute difference (grey levels, 0-255) of two thumbnails above which the second frame
#: is a new scene (docs/benchmarks.md, "Tracking").
CUT_LEVEL: Final = 14.0
#: A followed face is looked for in the square of this many times its side around its box.
SEARCH_CONTEXT: Final = 2.0
#: A face from the whole-frame pass overlapping a followed face by this much is that face.
SAME_FACE_IOU: Final = 0.3
#: A followed face the full pass misses stays where one model pass on its surroundings finds
#: it again at least this sure (docs/benchmarks.md, "Tracking").
KEEP_SCORE: Final = 0.7
#: A face YuNet finds again around a followed face's last box is that face from this IoU with
#: it: a face moves little from one frame to the next, and YuNet's square around a small face
#: can hold a larger one beside it (docs/benchmarks.md, "YuNet's sweep").
YUNET_AGAIN_IOU: Final = 0.5
#: Streams whose faces are followed; the least recently seen beyond this is forgotten.
MAX_STREAMS: Final = 256

Thumbnail = npt.NDArray[np.float32]


def thumbnail(frame_bgr: ImageU8) -> Thumbnail:
    """The frame in grey at ``THUMB_WH``, as float32."""
    grey = np.asarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY), np.uint8)
    return np.asarray(shrink(grey, THUMB_WH), np.float32)


def is_cut(before: Thumbnail, after: Thumbnail, level: float = CUT_LEVEL) -> bool:
    """Whether ``after`` shows another scene than ``before`` (their mean absolute difference
    exceeds ``level`` grey levels)."""
    return before.shape != after.shape or float(np.mean(np.abs(after - before))) > level


@dataclass
class _Stream:
    thumb: Thumbnail
    faces: list[DetectedFace] = field(default_factory=list)
    since_full: int = 0
    #: The tile the next frame between full passes looks at for faces that came in.
    next_tile: int = 0
    #: The ids of the faces the last full pass found itself (not kept by ``_keep``).
    confirmed: set[int] = field(default_factory=set)
    #: Full passes since the stream began or cut (YuNet sweeps one in ``sweep_every``).
    full_passes: int = 0


class TrackingDetector:
    """``full`` now and then, ``quick`` in between: the same network without second looks,
    whose lanes take the whole frame and a tile, or the faces' surroundings, side by side."""

    def __init__(
        self,
        full: BlazeFaceDetector,
        quick: BlazeFaceDetector,
        *,
        full_every: int = 10,
        sweep_every: int = SWEEP_EVERY,
        cut_level: float = CUT_LEVEL,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        if min(full_every, max_streams) < 1 or sweep_every < 0:
            raise ValueError(
                f"expected full_every and max_streams >= 1 and sweep_every >= 0, found "
                f"{full_every}, {max_streams} and {sweep_every}"
            )
        self._full = full
        self._quick = quick
        self._full_every = full_every
        self._sweep_every = sweep_every
        self._cut_level = cut_level
        self._max_streams = max_streams
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._ids = itertools.count(1)
        #: Frames that got the full pass, and all frames (for the worker's metrics and benches).
        self.full_passes = 0
        self.frames = 0

    @property
    def full_sweep(self) -> YuNetSweep | None:
        """The full pass's YuNet sweep (its counters), where it has one."""
        return self._full.sweep

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        self.frames += 1
        thumb = thumbnail(frame_bgr)
        stream = self._streams.get(stream_id)
        cut = stream is None or is_cut(stream.thumb, thumb, self._cut_level)
        if stream is None or cut:
            stream = _Stream(thumb)
            self._streams[stream_id] = stream
        stream.thumb = thumb
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)
        faces = None
        if not cut and stream.since_full + 1 < self._full_every:
            tiles = _tiles(frame_bgr.shape[1], frame_bgr.shape[0])
            tile = tiles[stream.next_tile % len(tiles)]
            stream.next_tile += 1
            faces = self._follow(frame_bgr, stream.faces, tile)
        if faces is None:  # due, a cut, or a face lost: the full pass
            sweep = self._sweep_every > 0 and stream.full_passes % self._sweep_every == 0
            faces = self._identify(self._full.detect(frame_bgr, sweep=sweep), stream.faces)
            stream.full_passes += 1
            followed = [face for face in stream.faces if face.track_id in stream.confirmed]
            stream.confirmed = {face.track_id for face in faces if face.track_id is not None}
            kept, by_yunet = self._keep(frame_bgr, followed, faces)
            faces += kept
            stream.confirmed |= by_yunet
            stream.since_full = 0
            self.full_passes += 1
        else:
            stream.since_full += 1
        stream.faces = faces
        return faces

    def _follow(
        self,
        frame_bgr: ImageU8,
        followed: Sequence[DetectedFace],
        tile: tuple[int, int, int, int],
    ) -> list[DetectedFace] | None:
        """The followed faces found again, and the faces that walked in; None when a followed
        face is lost or an unsure one turns up (the full pass decides).

        One pass on the whole frame and one on ``tile`` (the full pass's tiles in turn, for
        the small faces) find the faces; a followed face they do not find again is looked for
        in the square around its last box (one pass each)."""
        height, width = frame_bgr.shape[:2]
        seen, in_tile = self._quick.detect_in(
            frame_bgr, [(0, 0, width, height), tile], (True, False)
        )
        seen += [
            (face, score) for face, score in in_tile if not _pairs([face], [f for f, _ in seen])
        ]
        matched = _pairs([face for face, _ in seen], followed)  # seen index -> followed index
        again: dict[int, DetectedFace] = {known: seen[index][0] for index, known in matched.items()}
        missing = [i for i in range(len(followed)) if i not in again]
        boxes = [followed[i].box_xywh for i in missing]
        for i, by_blazeface in zip(missing, find_again(self._quick, frame_bgr, boxes), strict=True):
            others = [face for j, face in enumerate(followed) if j != i]
            found = by_blazeface or self._yunet_again(frame_bgr, followed[i].box_xywh, others)
            if found is None:
                return None
            again[i] = found[0]
        faces = [
            again[i]._replace(track_id=face.track_id, age=face.age + 1)
            for i, face in enumerate(followed)
        ]
        newcomers = [
            (face, score)
            for index, (face, score) in enumerate(seen)
            if index not in matched and not _pairs([face], faces)
        ]
        if any(score < SURE_SCORE for _, score in newcomers):
            return None
        return faces + [face._replace(track_id=next(self._ids)) for face, _ in newcomers]

    def _keep(
        self,
        frame_bgr: ImageU8,
        followed: Sequence[DetectedFace],
        found: Sequence[DetectedFace],
    ) -> tuple[list[DetectedFace], set[int]]:
        """The ``followed`` faces that the full pass's ``found`` misses but that are found again
        around their last box, a frame older, and the ids of those YuNet found.

        By BlazeFace from ``KEEP_SCORE`` up: a face seen the frame before is likelier to be
        there than one nobody saw, so it needs less evidence. Only faces the full pass before
        found itself are asked for (``_Stream.confirmed``): a face is kept over one full pass
        that misses it, never two, and a face the quick pass took that the full pass never
        found is not kept. By YuNet at its sweep's score where BlazeFace finds none: YuNet's
        face counts as the full pass's own (it is how a face only YuNet's sweep found is
        followed from one full pass to the next)."""
        ids = {face.track_id for face in found}
        lost = [face for face in followed if face.track_id not in ids]
        boxes = [face.box_xywh for face in lost]
        kept: list[DetectedFace] = []
        by_yunet: set[int] = set()
        for face, by_blazeface in zip(lost, find_again(self._quick, frame_bgr, boxes), strict=True):
            yunet = None
            again: tuple[DetectedFace, float] | None
            if by_blazeface is not None and by_blazeface[1] >= KEEP_SCORE:
                again = by_blazeface
            else:
                again = yunet = self._yunet_again(frame_bgr, face.box_xywh, [*found, *kept])
            if again is None or _pairs([again[0]], [*found, *kept]):
                continue
            kept.append(again[0]._replace(track_id=face.track_id, age=face.age + 1))
            if yunet is not None and face.track_id is not None:
                by_yunet.add(face.track_id)
        return kept, by_yunet

    def _yunet_again(
        self,
        frame_bgr: ImageU8,
        box_xywh: tuple[int, int, int, int],
        others: Sequence[DetectedFace],
    ) -> tuple[DetectedFace, float] | None:
        """YuNet's face around ``box_xywh`` at its sweep's score (``YuNetSweep.find_again``),
        overlapping it by ``YUNET_AGAIN_IOU`` and none of the ``others`` (the frame's other
        faces) by ``SAME_FACE_IOU``, where the full pass has YuNet's sweep; None otherwise."""
        sweep = self._full.sweep
        if sweep is None:
            return None
        found = sweep.find_again(frame_bgr, box_xywh, YUNET_AGAIN_IOU)
        if found is None or _pairs([found.face], others):
            return None
        return found.face, found.score

    def _identify(
        self, found: Sequence[DetectedFace], known: Sequence[DetectedFace]
    ) -> list[DetectedFace]:
        """``found`` with the id (and one more frame of age) of the ``known`` face each is
        (``SAME_FACE_IOU``), else a new id."""
        matched = _pairs(found, known)
        out = []
        for index, face in enumerate(found):
            if index in matched:
                same = known[matched[index]]
                out.append(face._replace(track_id=same.track_id, age=same.age + 1))
            else:
                out.append(face._replace(track_id=next(self._ids), age=0))
        return out


def find_again(
    detector: BlazeFaceDetector,
    frame_bgr: ImageU8,
    boxes_xywh: Sequence[tuple[int, int, int, int]],
    context: float = SEARCH_CONTEXT,
) -> list[tuple[DetectedFace, float] | None]:
    """Per box, the face in the square of ``context`` x its side around it that overlaps it
    most (IoU >= ``SAME_FACE_IOU``), with its score; None where there is none. One model pass
    a box."""
    if not boxes_xywh:
        return []
    height, width = frame_bgr.shape[:2]
    regions = [_around(box, context, (width, height)) for box in boxes_xywh]
    out: list[tuple[DetectedFace, float] | None] = []
    for box, found in zip(
        boxes_xywh, detector.detect_in(frame_bgr, regions, [True] * len(regions)), strict=True
    ):
        overlaps = iou_matrix_xywh([box], [face.box_xywh for face, _ in found])[0]
        best = int(np.argmax(overlaps)) if found else -1
        out.append(found[best] if found and overlaps[best] >= SAME_FACE_IOU else None)
    return out


def _around(
    box_xywh: tuple[int, int, int, int], context: float, frame_wh: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The square of ``context`` x the box's side on its centre, clipped to the frame."""
    x, y, w, h = box_xywh
    side = context * max(w, h)
    x0, y0 = max(0, round(x + w / 2 - side / 2)), max(0, round(y + h / 2 - side / 2))
    x1 = min(frame_wh[0], round(x + w / 2 + side / 2))
    y1 = min(frame_wh[1], round(y + h / 2 + side / 2))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The full pass's tiles of a frame of this size, large ones first."""
    return [tile for fraction in TILE_FRACTIONS for tile in tile_regions(width, height, fraction)]


def _pairs(found: Sequence[DetectedFace], known: Sequence[DetectedFace]) -> dict[int, int]:
    """found index -> known index, one to one, highest overlap first (IoU >= SAME_FACE_IOU)."""
    if not found or not known:
        return {}
    overlaps = iou_matrix_xywh([k.box_xywh for k in known], [f.box_xywh for f in found])
    return match_greedy(overlaps, SAME_FACE_IOU)


class TrackingConfig(BlazeFaceConfig):
    #: Frames of a stream between two full passes.
    full_every: int = Field(default=10, ge=1, le=1000)


# The tiled detector's boxes, and in between the same network's around each face.
@register(
    "blazeface_tracking",
    TrackingConfig,
    BLAZEFACE_FRAMING,
    "blazeface now and then (first frame, every full_every, a cut, a face lost), the faces "
    "followed in between",
)
def _tracking(config: TrackingConfig) -> TrackingDetector:
    size, threads = config.min_face_px, config.tf_threads
    return TrackingDetector(
        # Its sweeps are the tracker's to call (``sweep_every`` here is per stream).
        BlazeFaceDetector("short", min_face_px=size, threads=threads, tiled=True, sweep_every=1),
        BlazeFaceDetector(
            "short",
            min_face_px=size,
            threads=threads,
            tiled=True,
            second_look=False,
            min_score=CANDIDATE_SCORE,
        ),
        full_every=config.full_every,
        sweep_every=config.sweep_every,
    )
