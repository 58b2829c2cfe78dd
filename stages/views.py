"""Which views of each face the network sees: the face, its mirror image, or both averaged.

Both views averaged are worth about half a point of PublicTest over one (68.99% against
68.46% for the shipped network) and cost two network passes. A face the detector follows
from frame to frame is seen again at the next frame, so under the ``alternate`` policy it gets
one view a frame, the face and its mirror in turn, and the tracker's smoothing averages them
over time: both views at a track's first frame and for faces without identity (still images,
detectors that do not follow), one after that. Pure functions; the classifier
(``model_base.LoadedModel.classify``) runs the rows they lay out.

A followed face need not be seen at every frame at all: with ``every`` N (``due_faces``) it is
classified at its track's first frame and every N-th after it, and keeps its track's smoothed
probabilities in between (``batching.classify_frames``); the views alternate over the frames
it is seen at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_POLICY",
    "MirrorPolicy",
    "View",
    "average_views",
    "choose_views",
    "due_faces",
    "view_rows",
]

#: both: the face and its mirror image, their probabilities averaged; face or mirror: one pass.
View = Literal["both", "face", "mirror"]
#: always: both views of every face; alternate: both at a track's first frame and for faces
#: without identity, one view a frame in turn for followed faces; never: the face alone.
MirrorPolicy = Literal["always", "alternate", "never"]
#: The worker's (docs/benchmarks.md, "Mirror views").
DEFAULT_POLICY: Final[MirrorPolicy] = "alternate"


def due_faces(track_ids: Sequence[int | None], ages: Sequence[int], every: int) -> list[bool]:
    """Which faces the network sees this frame when a followed face is seen every ``every``
    frames: those without a track, at their track's first frame, and every ``every``-th after
    it (``ages`` counts the frames each face was followed before this one)."""
    if len(track_ids) != len(ages):
        raise ValueError(f"expected one age per face ({len(track_ids)}), found {len(ages)}")
    if every < 1:
        raise ValueError(f"every: expected >= 1, found {every}")
    return [
        track_id is None or age % every == 0 for track_id, age in zip(track_ids, ages, strict=True)
    ]


def choose_views(
    track_ids: Sequence[int | None], ages: Sequence[int], policy: MirrorPolicy, every: int = 1
) -> list[View]:
    """The view of each face under ``policy``; ``ages`` counts the frames each face was
    followed before this one (0: first seen), ``track_ids`` None where none follows it.
    Under ``alternate`` a followed face's view turns at each frame it is seen at, one in
    ``every`` (``due_faces``)."""
    if len(track_ids) != len(ages):
        raise ValueError(f"expected one age per face ({len(track_ids)}), found {len(ages)}")
    if every < 1:
        raise ValueError(f"every: expected >= 1, found {every}")
    if policy == "always":
        return ["both"] * len(ages)
    if policy == "never":
        return ["face"] * len(ages)
    return [
        "both" if track_id is None or age == 0 else ("mirror" if (age // every) % 2 else "face")
        for track_id, age in zip(track_ids, ages, strict=True)
    ]


def view_rows(faces: npt.NDArray[np.uint8], views: Sequence[View]) -> npt.NDArray[np.uint8]:
    """The network's input for ``faces`` (N, H, W, C) seen as ``views``: each face's rows in
    turn, the face before its mirror image where it has both."""
    if len(views) != len(faces):
        raise ValueError(f"expected one view per face ({len(faces)}), found {len(views)}")
    rows = []
    for face, view in zip(faces, views, strict=True):
        if view != "mirror":
            rows.append(face)
        if view != "face":
            rows.append(face[:, ::-1])
    return np.ascontiguousarray(np.stack(rows)) if rows else faces[:0]


def average_views(rows: npt.NDArray[np.float32], views: Sequence[View]) -> npt.NDArray[np.float32]:
    """Per face the mean of its rows of ``rows`` (laid out by ``view_rows``)."""
    counts = np.asarray([2 if view == "both" else 1 for view in views], dtype=np.int64)
    expected = int(counts.sum())
    if len(rows) != expected:
        raise ValueError(f"expected {expected} rows for {len(views)} faces, found {len(rows)}")
    if not len(views):
        return rows[:0]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.asarray(np.add.reduceat(rows, starts, axis=0) / counts[:, None], dtype=np.float32)
