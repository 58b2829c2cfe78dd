"""Faces of several prepared frames through one ``classify`` call, each face seen as the mirror
policy chooses (``views``), each row back to its frame."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from shared.labels import NUM_EMOTIONS

from .faces import PreparedFrame
from .model_base import Classifier, Probabilities
from .views import DEFAULT_POLICY, MirrorPolicy, View, choose_views

__all__ = ["classify_frames"]


def classify_frames(
    frames: Sequence[PreparedFrame], classifier: Classifier, mirror: MirrorPolicy = DEFAULT_POLICY
) -> tuple[list[Probabilities], float]:
    """Per frame its faces' probabilities (N_i, 7), and the one call's time in ms; each face
    seen as ``mirror`` chooses from its track and age (``views.choose_views``).

    Frames without faces (or that failed to decode) get an empty (0, 7) block; when no frame
    has a face the classifier is not called and the time is 0.
    """
    counts = [len(frame.faces_gray) for frame in frames]
    total = sum(counts)
    if total == 0:
        empty = np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        return [empty.copy() for _ in frames], 0.0
    faces_gray = np.concatenate([frame.faces_gray for frame in frames if len(frame.faces_gray)])
    views: list[View] = []
    for frame, count in zip(frames, counts, strict=True):
        track_ids = frame.track_ids or (None,) * count
        views += choose_views(track_ids, frame.ages or (0,) * count, mirror)
    started_ns = time.perf_counter_ns()
    probabilities = classifier.classify(faces_gray, views)
    classify_ms = (time.perf_counter_ns() - started_ns) / 1e6
    if len(probabilities) != total:
        raise ValueError(f"classifier gave {len(probabilities)} rows for {total} faces")
    bounds = np.cumsum(counts)[:-1]
    return list(np.split(probabilities, bounds)), classify_ms
