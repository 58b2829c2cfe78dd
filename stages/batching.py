"""Faces of several prepared frames through one ``classify`` call, each face seen as the mirror
policy chooses (``views``), each row back to its frame; a followed face not due this frame
(``views.due_faces``) keeps its track's smoothed probabilities instead of a network pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from shared.labels import NUM_EMOTIONS

from .faces import PreparedFrame
from .model_base import Classifier, Probabilities
from .views import DEFAULT_POLICY, MirrorPolicy, View, choose_views, due_faces

__all__ = ["Carried", "Classified", "classify_frames"]

#: (stream id, the detector's face identity) -> that face's smoothed probabilities (7,), or
#: None where nothing follows it (``tracker.FaceTracker.smoothed``).
Carried = Callable[[str, int], npt.NDArray[np.float32] | None]


class Classified(NamedTuple):
    """Per frame its faces' probabilities (N_i, 7), the one classifier call's time in ms, and
    how many faces the network saw (the others kept what ``carried`` gave)."""

    rows: list[Probabilities]
    classify_ms: float
    seen: int


def classify_frames(
    frames: Sequence[PreparedFrame],
    classifier: Classifier,
    mirror: MirrorPolicy = DEFAULT_POLICY,
    *,
    every: int = 1,
    carried: Carried | None = None,
) -> Classified:
    """Per frame its faces' probabilities (N_i, 7), the one call's time in ms and the faces it
    saw (``Classified``); each face seen as ``mirror`` chooses from its track and age
    (``views.choose_views``).

    With ``carried``, a followed face seen at most every ``every`` frames: where it is not due
    (``views.due_faces``) and ``carried`` knows it, its row is what ``carried`` gives, without
    a network pass. Frames without faces (or that failed to decode) get an empty (0, 7)
    block; when no face is due the classifier is not called and the time is 0.
    """
    counts = [len(frame.faces_gray) for frame in frames]
    rows = [np.zeros((count, NUM_EMOTIONS), dtype=np.float32) for count in counts]
    due_at: list[tuple[int, int]] = []  # (frame, face) of every face the network sees
    views: list[View] = []
    for index, (frame, count) in enumerate(zip(frames, counts, strict=True)):
        track_ids = frame.track_ids or (None,) * count
        ages = frame.ages or (0,) * count
        due = due_faces(track_ids, ages, every)
        picked = []
        for face, track_id in enumerate(track_ids):
            kept = None
            if carried is not None and track_id is not None and not due[face]:
                kept = carried(frame.header.stream_id, track_id)
            if kept is None:
                picked.append(face)
            else:
                rows[index][face] = kept
        due_at += [(index, face) for face in picked]
        views += choose_views(
            [track_ids[face] for face in picked], [ages[face] for face in picked], mirror, every
        )
    if not due_at:
        return Classified(rows, 0.0, 0)
    faces_gray = np.stack([frames[index].faces_gray[face] for index, face in due_at])
    started_ns = time.perf_counter_ns()
    probabilities = classifier.classify(faces_gray, views)
    classify_ms = (time.perf_counter_ns() - started_ns) / 1e6
    if len(probabilities) != len(due_at):
        raise ValueError(f"classifier gave {len(probabilities)} rows for {len(due_at)} faces")
    for (index, face), row in zip(due_at, probabilities, strict=True):
        rows[index][face] = row
    return Classified(rows, classify_ms, len(due_at))
