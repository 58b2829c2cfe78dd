"""A second look at each face candidate, at the scale the detector knows best.

The tiled pass keeps weak candidates (score from ``CANDIDATE_SCORE``) so as to miss few faces;
each is then cut out again with its surroundings, a square twice its side, and shown to the
same network, where a face fills half the input: the scale the network knows best. A face is
found again with a high score; a clock's hands, a rocket's badge or a cat's nose that looked
like one at some tile's scale mostly is not. Where that look leaves it unsure, a second one
takes in three times the side. A candidate from ``SURE_SCORE`` up is kept without a look.
Beside the network, OpenCV's frontal-face Haar cascade, which fails on other things than
BlazeFace does, looks at the same square: how many of its windows take the centre for a face
(``haar_votes``) is one more piece of evidence. The candidate's own score, its looks and the
votes are combined in one logistic score (``face_logit``), fitted on scenes of FER2013
``train/`` faces and checked on ``test/`` faces (docs/benchmarks.md, "Second look"). Pure
numpy and OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import ImageU8, to_gray

__all__ = [
    "CANDIDATE_SCORE",
    "LOOKS",
    "LOOK_FLOOR",
    "LOOK_IOU",
    "SURE_SCORE",
    "Look",
    "confirm",
    "context_square",
    "face_logit",
    "haar_votes",
    "logit",
    "unsure",
]

#: Lowest detector score a candidate may have to get a second look.
CANDIDATE_SCORE: Final = 0.2
#: A candidate this sure needs no look: on 1,000 scenes of ``train/`` faces none of the
#: candidates from 0.9 up was false (and one in 700 frames of ``test/`` scenes), where most
#: faces a webcam sees are (the recorded portraits: 0.95 in the median). 15% of the scenes'
#: FER2013 faces, small and grey, score so high.
SURE_SCORE: Final = 0.9
#: Lowest score a detection in a look counts with (0 where none reaches it).
LOOK_FLOOR: Final = 0.05
#: A look counts a face found again where it overlaps the candidate by this IoU.
LOOK_IOU: Final = 0.3
#: Scores are clipped to [EPS, 1 - EPS] before their log-odds are taken.
EPS: Final = 1e-4
#: The Haar cascade sees the first look's square (twice the candidate's side) at this many
#: pixels, the candidate's box at 28: the cascade's faces lie at 0.9-1.5 times BlazeFace's box
#: side (5th to 95th percentile on the train scenes), 26-43 px, just above its 24 px window.
HAAR_SQUARE: Final = 56
#: The window sizes (px) and the step between them that the cascade tries in that square.
HAAR_SIZES: Final = (24, 44)
HAAR_STEP: Final = 1.1
#: A window votes for the candidate when its centre lies within this share of the square's
#: side from the square's centre, across and down.
HAAR_REACH: Final = (0.15, 0.175)


@dataclass(frozen=True)
class Look:
    """One look: a square of ``context`` x the candidate box's longer side on its centre; and
    the weights of the log-odds of the candidate's score, of this and the earlier looks'
    scores and of log(1 + the Haar votes), with the bias: the candidate is a face where the sum
    is above 0."""

    context: float
    weights: tuple[float, ...]
    bias: float


#: The looks, in order. Each candidate gets the first; the second only where the first left
#: it unsure (its sum within ``UNSURE`` of 0: about one candidate in ten), which on the scenes
#: decides as the second look at every candidate would, for half the cost. Weights fitted by
#: logistic regression on 1,000 scenes of ``train/`` faces; the biases then set so that 2,500
#: scenes of ``train/`` faces (those and 1,500 more) have under 0.02 false faces a frame.
LOOKS: Final = (
    Look(2.0, (1.718, 2.803, 1.964), -1.400),
    Look(3.0, (1.265, 1.957, 1.503, 1.796), -1.256),
)
UNSURE: Final = 2.0


def logit(score: float) -> float:
    """The log-odds of a score in [0, 1], clipped to +-log((1 - EPS) / EPS)."""
    clipped = min(max(float(score), EPS), 1.0 - EPS)
    return math.log(clipped / (1.0 - clipped))


def face_logit(score: float, looks: Sequence[float], votes: int) -> float:
    """Evidence that a candidate is a face (above 0: keep it), from its own ``score``, the
    best score found again on it in each of the first ``len(looks)`` of ``LOOKS`` and the Haar
    cascade's ``votes`` (``haar_votes``)."""
    if not 1 <= len(looks) <= len(LOOKS):
        raise ValueError(f"expected 1 to {len(LOOKS)} looks, found {len(looks)}")
    if votes < 0:
        raise ValueError(f"expected votes >= 0, found {votes}")
    look = LOOKS[len(looks) - 1]
    values = (logit(score), *(logit(value) for value in looks), math.log1p(votes))
    return look.bias + sum(w * v for w, v in zip(look.weights, values, strict=True))


def haar_votes(cascade: cv2.CascadeClassifier, frame_bgr: ImageU8, box_xyxy: npt.ArrayLike) -> int:
    """How many windows of a Haar ``cascade`` (each on its own, not grouped) take the centre
    of the candidate ``box_xyxy`` (frame pixels) for a face, in the first look's square around
    it cut from ``frame_bgr`` and brought to ``HAAR_SQUARE`` pixels."""
    square, _, _ = context_square(frame_bgr, box_xyxy, LOOKS[0].context, HAAR_SQUARE)
    windows = cascade.detectMultiScale(
        to_gray(square),
        scaleFactor=HAAR_STEP,
        minNeighbors=0,
        minSize=(HAAR_SIZES[0], HAAR_SIZES[0]),
        maxSize=(HAAR_SIZES[1], HAAR_SIZES[1]),
    )
    xywh = np.asarray(windows, np.float64).reshape(-1, 4)
    off_x = np.abs(xywh[:, 0] + xywh[:, 2] / 2 - HAAR_SQUARE / 2)
    off_y = np.abs(xywh[:, 1] + xywh[:, 3] / 2 - HAAR_SQUARE / 2)
    near = (off_x < HAAR_REACH[0] * HAAR_SQUARE) & (off_y < HAAR_REACH[1] * HAAR_SQUARE)
    return int(np.count_nonzero(near))


def confirm(
    scores: Sequence[float],
    look: Callable[[list[int], Look], list[float]],
    votes: Callable[[list[int]], list[int]],
) -> list[bool]:
    """Which candidates, given by their detector ``scores``, are faces: one from
    ``SURE_SCORE`` up without a look; every other gets the Haar cascade's ``votes`` (by
    candidate index) and the first of ``LOOKS`` (``look(indices, which)`` gives the score of
    each candidate found again), and those it leaves ``unsure`` the next look."""
    looks: list[list[float]] = [[] for _ in scores]
    evidence = [math.inf if score >= SURE_SCORE else 0.0 for score in scores]
    pending = [i for i, score in enumerate(scores) if score < SURE_SCORE]
    counted = dict(zip(pending, votes(pending), strict=True))
    for which in LOOKS:
        if not pending:
            break
        for i, found_again in zip(pending, look(pending, which), strict=True):
            looks[i].append(found_again)
            evidence[i] = face_logit(scores[i], looks[i], counted[i])
        pending = [i for i in pending if unsure(evidence[i], len(looks[i]))]
    return [value > 0 for value in evidence]


def unsure(evidence: float, looks_taken: int) -> bool:
    """Whether a candidate with this ``face_logit`` after ``looks_taken`` looks gets another."""
    return looks_taken < len(LOOKS) and abs(evidence) < UNSURE


def context_square(
    source_bgr: ImageU8,
    box_xyxy: npt.ArrayLike,
    context: float,
    size: int,
    source_scale: float = 1.0,
) -> tuple[ImageU8, float, tuple[float, float]]:
    """A square of ``context`` x the box's longer side on the box's centre, black where it
    leaves the frame, brought to ``size`` x ``size`` pixels; with the scale from the frame to
    it and its top-left corner in the frame (``frame = square / scale + corner``).

    ``box_xyxy`` is in frame pixels; ``source_bgr`` is the frame resized by ``source_scale``
    (a smaller copy the square is cut from more cheaply when it is as sharp as needed)."""
    x0, y0, x1, y1 = (float(v) * source_scale for v in np.asarray(box_xyxy, np.float64)[:4])
    side = max(2, round(max(x1 - x0, y1 - y0) * context))
    left, top = round((x0 + x1) / 2 - side / 2), round((y0 + y1) / 2 - side / 2)
    scale = size / side
    height, width = source_bgr.shape[:2]
    inside_x0, inside_y0 = min(max(left, 0), width), min(max(top, 0), height)
    inside_x1, inside_y1 = max(min(left + side, width), 0), max(min(top + side, height), 0)
    square = np.zeros((size, size, 3), np.uint8)
    # Only the part inside the frame is resized, straight to where it lies in the square.
    to_x0, to_y0 = round((inside_x0 - left) * scale), round((inside_y0 - top) * scale)
    to_x1, to_y1 = round((inside_x1 - left) * scale), round((inside_y1 - top) * scale)
    if to_x1 > to_x0 and to_y1 > to_y0:
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        square[to_y0:to_y1, to_x0:to_x1] = cv2.resize(
            source_bgr[inside_y0:inside_y1, inside_x0:inside_x1],
            (to_x1 - to_x0, to_y1 - to_y0),
            interpolation=method,
        )
    return square, scale * source_scale, (left / source_scale, top / source_scale)
