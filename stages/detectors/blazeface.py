"""The ``blazeface`` detectors: MediaPipe's BlazeFace as a composition of named steps.

1. **Regions** (``tiler.tile_jobs``): the whole frame alone, or the frame and its tiles at two
   sizes, so that small faces reach the network at a scale it knows.
2. **The single pass** (``blazeface_pass.BlazeFacePass``): the network on every region, its
   boxes and eyes in frame pixels.
3. **Merge** (``merge_tiers``): weighted NMS of the sure detections, then of the weak ones
   (kept when tiled, for the second look) that overlap none of them.
4. **Box fit** (``fitted_faces``): BlazeFace's box (brows to mouth) squared and grown to the
   forehead-to-chin box the other detectors give (``BOX_FIT``), the small ones and those
   nested in a stronger one dropped; the eyes give each face its roll.
5. **Second look and vote** (``second_look.confirm``): each weak candidate is looked at again
   in its surroundings by the network, and the Haar cascade votes on it; a fitted logistic
   score keeps it or not.
6. **YuNet's look** (``yunet_look``): a kept candidate BlazeFace scored under
   ``UNSURE_SCORE`` stays only where another network, YuNet, finds a face on it too.
7. **YuNet's sweep** (``yunet_sweep``): YuNet on the whole frame adds the faces it is sure of
   where the pass found none, the faces BlazeFace misses whatever their size.

The box this detector reports and the crop the model sees are two fitted transforms on
purpose: ``BOX_FIT`` gives the box that is drawn, tracked (IoU), filtered for nesting and
compared with the ground truth, the same kind of box for every detector (mean IoU with the
Haar-cascade truth of recordings/demo 0.87 against 0.71 for the raw box); the detector's
``Framing`` (``blazeface_variants``) then maps that box to FER2013's square, fitted on scenes.
Both are affine in the box's centre and side, so the crop is one transform of the network's
box except where the squared box is clipped at the frame's edge, which changes the crop of 5%
of the faces and accuracy by 0.1 points (docs/benchmarks.md, "Faces partly outside the frame").
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from shared.image import BoxXYWH, ImageU8, iou_matrix_xyxy

from .base import DetectedFace, DetectorError, square_box_xywh
from .blazeface_pass import BlazeFacePass, LookJob, Region
from .second_look import CANDIDATE_SCORE, Look, confirm
from .ssd import (
    FULL_RANGE,
    NESTED_INSIDE,
    NMS_IOU,
    SHORT_RANGE,
    outside_stronger,
    weighted_nms_xyxy,
)
from .tiler import tile_jobs
from .yunet_look import UNSURE_SCORE, YuNetLook
from .yunet_sweep import YuNetSweep, add_swept

__all__ = ["ASSETS", "BlazeFaceDetector", "fitted_faces", "merge_tiers"]

ASSETS: Final = Path(__file__).resolve().parents[1] / "assets" / "blazeface"
MODEL_FILES: Final = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range_sparse.tflite",
}
SPECS: Final = {"short": SHORT_RANGE, "full": FULL_RANGE}
#: Per variant, (scale, shift_y): the square box's side is ``scale`` x the BlazeFace box's mean
#: side, its centre moved down by ``shift_y`` x that side (negative: up, to take in the forehead).
#: Fitted for the best mean IoU on recordings/demo, whose ground truth is the Haar cascade's
#: (short: 0.87, full: 0.84, against 0.71 and 0.70 for the raw box); see docs/benchmarks.md.
BOX_FIT: Final = {"short": (1.05, -0.14), "full": (1.0, -0.10)}
#: Most interpreters a tiled detector shares its regions out to (nine regions a frame).
MAX_LANES: Final = 4


class Candidate(NamedTuple):
    """A face the pass found: its fitted box and roll, BlazeFace's own box (frame pixels,
    xyxy) and its score."""

    face: DetectedFace
    box_xyxy: npt.NDArray[np.float64]
    score: float


def merge_tiers(
    rows: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], sure_score: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Weighted NMS of the rows: first of those from ``sure_score`` (the model's own
    threshold), so that a face it finds gets the box it always got; then of the weak ones that
    overlap none of those, strongest first."""
    strong = scores >= sure_score
    merged, top = weighted_nms_xyxy(rows[strong], scores[strong], NMS_IOU)
    weak_rows, weak_scores = rows[~strong], scores[~strong]
    if not len(weak_rows):
        return merged, top
    if len(merged):
        apart = iou_matrix_xyxy(merged[:, :4], weak_rows[:, :4]).max(axis=0) <= NMS_IOU
        weak_rows, weak_scores = weak_rows[apart], weak_scores[apart]
    more, more_top = weighted_nms_xyxy(weak_rows, weak_scores, NMS_IOU)
    return np.concatenate([merged, more]), np.concatenate([top, more_top])


def fitted_faces(
    merged: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    box_fit: tuple[float, float],
    frame_wh: tuple[int, int],
    min_face_px: int,
) -> list[Candidate]:
    """The merged rows (strongest first) as faces: boxes squared and fitted (``BOX_FIT``),
    the small ones and those nested in a stronger one dropped."""
    scale, shift_y = box_fit
    candidates = []
    for row, score in zip(merged.astype(np.float64), scores.tolist(), strict=True):
        x0, y0, x1, y1, left_x, left_y, right_x, right_y = row.tolist()
        box = square_box_xywh((x0, y0, x1 - x0, y1 - y0), scale, shift_y, frame_wh)
        if box is not None and min(box[2], box[3]) >= min_face_px:
            roll = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
            candidates.append(Candidate(DetectedFace(box, roll), row[:4], score))
    if len(candidates) < 2:
        return candidates
    corners = [(x, y, x + w, y + h) for x, y, w, h in (c.face.box_xywh for c in candidates)]
    keep = outside_stronger(corners, NESTED_INSIDE)
    return [c for c, kept in zip(candidates, keep.tolist(), strict=True) if kept]


class BlazeFaceDetector:
    """BlazeFace short-range (faces within ~2 m) or full-range (sparse, up to ~5 m): the whole
    frame in one pass, or ``tiled`` with second looks (the module's steps)."""

    def __init__(
        self,
        variant: Literal["short", "full"] = "short",
        *,
        min_face_px: int = 40,
        min_score: float | None = None,
        threads: int = 0,
        model_path: Path | None = None,
        tiled: bool = False,
        second_look: bool | None = None,
        sweep_every: int | None = None,
    ) -> None:
        path = model_path or ASSETS / MODEL_FILES[variant]
        if not path.is_file():
            raise DetectorError(
                f"BlazeFace model not found: {path} (made by scripts/extract_detectors.py)"
            )
        if min_face_px < 1:
            raise ValueError(f"expected min_face_px >= 1, found {min_face_px}")
        self._spec = SPECS[variant]
        # Tiled, the regions are shared out over one single-threaded interpreter per core (the
        # model is too small to gain from XNNPACK's threads, and LiteRT lets go of the GIL
        # while it runs): the nine regions of a 640x480 frame take about 10.5 ms of wall-clock
        # time on 2 cores instead of 14.5 on one.
        lanes = min(threads if threads > 0 else (os.cpu_count() or 1), MAX_LANES) if tiled else 1
        # With second looks (the default when tiled), weak candidates are kept too: each gets
        # a look at its surroundings that confirms it or not (``second_look``).
        self._looks = tiled if second_look is None else second_look
        default_score = CANDIDATE_SCORE if self._looks else self._spec.min_score
        self.single_pass = BlazeFacePass(
            path,
            self._spec,
            lanes=lanes,
            threads=1 if tiled else threads,
            min_score=default_score if min_score is None else min_score,
            cascades=self._looks,
        )
        #: The last look at the unsure faces the second look keeps (None without looks).
        self.yunet = YuNetLook() if self._looks else None
        #: YuNet on the whole frame for the faces the pass misses, one frame in ``sweep_every``
        #: (with second looks 1 unless told otherwise; 0: never).
        every = (1 if self._looks else 0) if sweep_every is None else sweep_every
        if every < 0:
            raise ValueError(f"expected sweep_every >= 0, found {sweep_every}")
        self.sweep = YuNetSweep() if every else None
        self._sweep_every = max(every, 1)
        self._frames = 0
        self._box_fit = BOX_FIT[variant]
        self._min_face_px = min_face_px
        self._tiled = tiled
        # A pass holds one set of tensors per lane; the worker calls from one thread, a bench
        # might not.
        self._lock = threading.Lock()

    def detect(
        self, frame_bgr: ImageU8, stream_id: str = "", *, sweep: bool = True
    ) -> list[DetectedFace]:
        """The faces in the frame; YuNet's sweep adds its own one frame in ``sweep_every``,
        where this detector has a sweep and ``sweep`` asks for it (a caller that knows better,
        the tracker, builds it with 1 and says when)."""
        height, width = frame_bgr.shape[:2]
        if self._tiled:
            sources, jobs = tile_jobs(frame_bgr, self._spec.input_size)
        else:
            sources, jobs = [(1.0, frame_bgr)], [Region(frame_bgr, 1.0, (0, 0, width, height))]
        with self._lock:
            found = self.single_pass.regions(jobs, (width, height))
            rows = np.concatenate([b for b, _ in found])
            faces: list[DetectedFace] = []
            if len(rows):
                scores = np.concatenate([s for _, s in found])
                merged, top = merge_tiers(rows, scores, self._spec.min_score)
                candidates = fitted_faces(
                    merged, top, self._box_fit, (width, height), self._min_face_px
                )
                if self._looks and candidates:
                    candidates = self._second_look(sorted(sources, key=lambda s: s[0]), candidates)
                faces = [candidate.face for candidate in candidates]
            self._frames += 1
            due = (self._frames - 1) % self._sweep_every == 0
            if sweep and due and self.sweep is not None:
                faces = add_swept(self.sweep, frame_bgr, faces, self._min_face_px)
        return faces

    def detect_in(
        self, frame_bgr: ImageU8, regions_xywh: Sequence[BoxXYWH], whole: Sequence[bool]
    ) -> list[list[tuple[DetectedFace, float]]]:
        """Per region, the faces (and scores) of one model pass on it over the lanes, no second
        look; a tile (faces it cuts or too large for it left out) unless its ``whole``."""
        height, width = frame_bgr.shape[:2]
        jobs = [Region(frame_bgr, 1.0, r, w) for r, w in zip(regions_xywh, whole, strict=True)]
        with self._lock:
            found = self.single_pass.regions(jobs, (width, height))
        merged = [weighted_nms_xyxy(rows, scores, NMS_IOU) for rows, scores in found]
        return [
            [
                (c.face, c.score)
                for c in fitted_faces(rows, top, self._box_fit, (width, height), self._min_face_px)
            ]
            for rows, top in merged
        ]

    def _second_look(
        self, sources: list[tuple[float, ImageU8]], candidates: list[Candidate]
    ) -> list[Candidate]:
        """The candidates that ``second_look.confirm`` keeps, those under ``UNSURE_SCORE``
        only where YuNet finds them too: the looks cut from the frame's copies (``sources``,
        smallest scale first), the Haar votes and YuNet's look from the frame itself."""
        frame = sources[-1][1]
        yunet = self.yunet
        if yunet is None:
            raise DetectorError("this BlazeFace detector was built without second looks")

        def look(indices: list[int], which: Look) -> list[float]:
            jobs: list[LookJob] = [
                (sources, candidates[i].box_xyxy, which.context) for i in indices
            ]
            return self.single_pass.look_scores(jobs)

        def votes(indices: list[int]) -> list[int]:
            return self.single_pass.votes(frame, [candidates[i].box_xyxy for i in indices])

        kept = confirm([c.score for c in candidates], look, votes)
        return [
            c
            for c, keep in zip(candidates, kept, strict=True)
            if keep and (c.score >= UNSURE_SCORE or yunet.finds(frame, c.face.box_xywh))
        ]
