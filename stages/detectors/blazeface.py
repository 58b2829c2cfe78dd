"""MediaPipe's BlazeFace face detector, run on LiteRT (``ai-edge-litert``; no mediapipe, no
TensorFlow).

The ``.tflite`` files come from the mediapipe wheel (``scripts/extract_blazeface.py``; licence
and sha256 in ``assets/blazeface/``). The frame is letterboxed to the model input, the SSD
outputs decoded with ``ssd``, and each box mapped back to frame pixels and grown from
BlazeFace's tight box (brows to mouth) to the square, forehead-to-chin box the Haar cascade
gives, which the tracker, the crop margin and the model's training all assume. The two eye
keypoints give each face its roll. Tiled, weak candidates are kept and each is confirmed or
dropped by a look at its surroundings, by the network and by OpenCV's Haar cascade
(``second_look``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import BoxXYWH, ImageU8, iou_matrix_xyxy

from .base import DetectedFace, DetectorError, square_box_xywh
from .haar import load_cascade
from .letterbox import Letterbox, letterbox_rgb, tile_regions, to_frame_xyxy
from .second_look import (
    CANDIDATE_SCORE,
    LOOK_FLOOR,
    LOOK_IOU,
    LOOKS,
    SURE_SCORE,
    context_square,
    face_logit,
    haar_votes,
    unsure,
)
from .ssd import (
    FULL_RANGE,
    SHORT_RANGE,
    AnchorSpec,
    anchors_cxcy,
    decode_boxes_xyxy,
    decode_eyes_xyxy,
    outside_stronger,
    sigmoid_scores,
    weighted_nms_xyxy,
)

__all__ = ["ASSETS", "TILE_FRACTIONS", "BlazeFaceDetector"]

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
NMS_IOU: Final = 0.3
#: A face box with at least this share of its area inside a stronger one's is dropped. On 400
#: scenes of FER2013 train/ faces this took false detections from 0.085 to 0.060 a frame at the
#: same recall (0.895); docs/benchmarks.md, "Nested boxes".
NESTED_INSIDE: Final = 0.5
#: Largest face, as a share of a tile's side, that a tile may report: larger ones the whole frame
#: sees at a scale the model knows. On 300 scenes of FER2013 train/ faces 0.5 and 0.65 would
#: find 0.917 and 0.922 of the faces (0.4: 0.900) for 0.097 and 0.103 false a frame (0.087), but
#: both put a false face on the astronaut's suit in scikit-image's photo, a real one.
TILE_MAX_FACE: Final = 0.4
#: Tile sizes, as shares of the frame's short side: on a 640x480 frame, two tiles of 480 px
#: (the model sees 0.27 of the frame's scale) and six of 320 px (0.4; the whole frame: 0.2).
#: Faces of 120-200 px fall between the whole frame's scale and the small tiles' (too large for
#: those, or cut by each of them); the large tiles took recall on 300 scenes of train/ faces
#: from 0.900 to 0.922 (100-200 px faces: 0.936 to 0.980) for 0.003 more false a frame.
TILE_FRACTIONS: Final = (1.0, 2 / 3)


#: Most interpreters a tiled detector shares its regions out to (nine regions a frame).
MAX_LANES: Final = 4
#: One region's detections: rows (K, 8) of box and eyes in frame pixels, and their scores (K,).
Found = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
_Job = TypeVar("_Job")
_Result = TypeVar("_Result")
#: A look's job: the frame and its smaller copies (scale, image), smallest scale first; a
#: candidate's box (frame pixels, xyxy); the look's context.
_LookJob = tuple[list[tuple[float, ImageU8]], npt.NDArray[np.float64], float]


class _Lane(NamedTuple):
    """What one thread runs with: its own interpreter and, with second looks, its own Haar
    cascade (neither may be used by two threads at once)."""

    interpreter: Any
    cascade: cv2.CascadeClassifier | None


class _Candidate(NamedTuple):
    """A face the passes found: its box and roll, BlazeFace's own box (frame pixels, xyxy)
    and its score."""

    face: DetectedFace
    box_xyxy: npt.NDArray[np.float64]
    score: float


class _Region(NamedTuple):
    """A region of the frame (frame pixels) to cut from ``source``, the frame resized by
    ``scale``; a tile unless ``whole`` (every face it shows is reported, as for the frame)."""

    source: ImageU8
    scale: float
    region: tuple[int, int, int, int]
    whole: bool = False


def _interpreter(path: Path, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads if threads > 0 else None)
    interpreter.allocate_tensors()
    return interpreter


class BlazeFaceDetector:
    """BlazeFace short-range (faces within ~2 m) or full-range (sparse, up to ~5 m)."""

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
    ) -> None:
        path = model_path or ASSETS / MODEL_FILES[variant]
        if not path.is_file():
            raise DetectorError(
                f"BlazeFace model not found: {path} (made by scripts/extract_blazeface.py)"
            )
        if min_face_px < 1:
            raise ValueError(f"expected min_face_px >= 1, found {min_face_px}")
        # Tiled, the regions are shared out over one single-threaded interpreter per core (the
        # model is too small to gain from XNNPACK's threads, and LiteRT lets go of the GIL
        # while it runs): the nine regions of a 640x480 frame take about 10.5 ms of wall-clock
        # time on 2 cores instead of 14.5 on one.
        lanes = min(threads if threads > 0 else (os.cpu_count() or 1), MAX_LANES) if tiled else 1
        # With second looks (the default when tiled), weak candidates are kept too: each gets
        # a look at its surroundings that confirms it or not (``second_look``).
        looks = tiled if second_look is None else second_look
        try:
            interpreters = [_interpreter(path, 1 if tiled else threads) for _ in range(lanes)]
        except (ValueError, RuntimeError) as error:
            raise DetectorError(f"BlazeFace model could not be loaded: {path}: {error}") from error
        self._lanes = [_Lane(i, load_cascade() if looks else None) for i in interpreters]
        self._pool = ThreadPoolExecutor(lanes - 1, "blazeface") if lanes > 1 else None
        self._spec: AnchorSpec = SPECS[variant]
        self._box_fit = BOX_FIT[variant]
        self._anchors = anchors_cxcy(self._spec)
        default_score = CANDIDATE_SCORE if looks else self._spec.min_score
        self._min_score = default_score if min_score is None else min_score
        self._min_face_px = min_face_px
        self._tiled = tiled
        self._looks = looks
        (self._input,) = interpreters[0].get_input_details()
        outputs = interpreters[0].get_output_details()
        # Regressors (1, A, 16) and classificators (1, A, 1); tell them apart by shape.
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self._regressors, self._scores = by_width[16], by_width[1]
        expected = (1, self._spec.input_size, self._spec.input_size, 3)
        anchors = {int(d["shape"][1]) for d in outputs}
        if tuple(self._input["shape"]) != expected or anchors != {len(self._anchors)}:
            raise DetectorError(
                f"{path}: input {tuple(self._input['shape'])} and {anchors} anchors, expected "
                f"{expected} and {len(self._anchors)} for BlazeFace {variant} range"
            )
        # An interpreter holds one set of tensors; the worker calls from one thread, a bench
        # might not.
        self._lock = threading.Lock()

    def detect(self, frame_bgr: ImageU8, stream_id: str = "") -> list[DetectedFace]:
        height, width = frame_bgr.shape[:2]
        whole = (0, 0, width, height)
        jobs: list[_Region] = []
        # The frame and the smaller copies its tiles are cut from, as (scale, image): second
        # looks are cut from the smallest that is sharp enough.
        sources: list[tuple[float, ImageU8]] = [(1.0, frame_bgr)]
        if not self._tiled:
            jobs.append(_Region(frame_bgr, 1.0, whole))
        else:
            # Per tile size, one resize of the frame to the scale the model sees its tiles at,
            # which they are all cut from (a third of the time of resizing each on its own);
            # the whole frame is shrunk from the first, coarsest, copy.
            for level, fraction in enumerate(TILE_FRACTIONS):
                tiles = tile_regions(width, height, fraction)
                scale = self._spec.input_size / tiles[0][2]
                size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
                source = np.asarray(
                    cv2.resize(frame_bgr, size_wh, interpolation=cv2.INTER_AREA), np.uint8
                )
                sources.append((scale, source))
                regions = [whole, *tiles] if level == 0 else tiles
                jobs += [_Region(source, scale, region) for region in regions]
        with self._lock:
            found = self._map(partial(self._detect_region, frame_wh=(width, height)), jobs)
            rows = np.concatenate([b for b, _ in found])
            if not len(rows):
                return []
            scores = np.concatenate([s for _, s in found])
            merged, top = self._merge(rows, scores)
            candidates = self._candidates(merged, top, (width, height))
            if self._looks and candidates:
                candidates = self._second_look(sorted(sources, key=lambda s: s[0]), candidates)
        return [candidate.face for candidate in candidates]

    def detect_in(
        self, frame_bgr: ImageU8, regions_xywh: Sequence[BoxXYWH], whole: Sequence[bool]
    ) -> list[list[tuple[DetectedFace, float]]]:
        """Per region, the faces (and scores) of one model pass on it over the lanes, no second
        look; a tile (faces it cuts or too large for it left out) unless its ``whole``."""
        height, width = frame_bgr.shape[:2]
        jobs = [_Region(frame_bgr, 1.0, r, w) for r, w in zip(regions_xywh, whole, strict=True)]
        with self._lock:
            found = self._map(partial(self._detect_region, frame_wh=(width, height)), jobs)
        merged = [weighted_nms_xyxy(rows, scores, NMS_IOU) for rows, scores in found]
        return [
            [(c.face, c.score) for c in self._candidates(rows, top, (width, height))]
            for rows, top in merged
        ]

    def _merge(
        self, rows: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Weighted NMS of the rows: first of those at the model's own threshold, so that a face
        it finds gets the box it always got; then of the weak ones (from ``min_score``) that
        overlap none of those, strongest first."""
        strong = scores >= self._spec.min_score
        merged, top = weighted_nms_xyxy(rows[strong], scores[strong], NMS_IOU)
        weak_rows, weak_scores = rows[~strong], scores[~strong]
        if not len(weak_rows):
            return merged, top
        if len(merged):
            apart = iou_matrix_xyxy(merged[:, :4], weak_rows[:, :4]).max(axis=0) <= NMS_IOU
            weak_rows, weak_scores = weak_rows[apart], weak_scores[apart]
        more, more_top = weighted_nms_xyxy(weak_rows, weak_scores, NMS_IOU)
        return np.concatenate([merged, more]), np.concatenate([top, more_top])

    def _candidates(
        self,
        merged: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        frame_wh: tuple[int, int],
    ) -> list[_Candidate]:
        """The merged rows (strongest first) as faces: boxes squared and fitted, the small ones
        and those nested in a stronger one dropped."""
        scale, shift_y = self._box_fit
        candidates = []
        for row, score in zip(merged.astype(np.float64), scores.tolist(), strict=True):
            x0, y0, x1, y1, left_x, left_y, right_x, right_y = row.tolist()
            box = square_box_xywh((x0, y0, x1 - x0, y1 - y0), scale, shift_y, frame_wh)
            if box is not None and min(box[2], box[3]) >= self._min_face_px:
                roll = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
                candidates.append(_Candidate(DetectedFace(box, roll), row[:4], score))
        if len(candidates) < 2:
            return candidates
        corners = [(x, y, x + w, y + h) for x, y, w, h in (c.face.box_xywh for c in candidates)]
        keep = outside_stronger(corners, NESTED_INSIDE)
        return [c for c, kept in zip(candidates, keep.tolist(), strict=True) if kept]

    def _second_look(
        self, sources: list[tuple[float, ImageU8]], candidates: list[_Candidate]
    ) -> list[_Candidate]:
        """The candidates that a look at their surroundings confirms (``second_look``): every
        candidate under ``SURE_SCORE`` gets the Haar cascade's votes and the first of
        ``LOOKS``, those it leaves unsure the next."""
        looks: list[list[float]] = [[] for _ in candidates]
        evidence = [math.inf if c.score >= SURE_SCORE else 0.0 for c in candidates]
        pending = [i for i, c in enumerate(candidates) if c.score < SURE_SCORE]
        frame = sources[-1][1]  # the votes were fitted on squares cut from the frame itself
        counted = self._map(partial(self._votes, frame), [candidates[i] for i in pending])
        votes = dict(zip(pending, counted, strict=True))
        for look in LOOKS:
            if not pending:
                break
            jobs = [(sources, candidates[i].box_xyxy, look.context) for i in pending]
            for i, score in zip(pending, self._map(self._look, jobs), strict=True):
                looks[i].append(score)
                evidence[i] = face_logit(candidates[i].score, looks[i], votes[i])
            pending = [i for i in pending if unsure(evidence[i], len(looks[i]))]
        return [c for c, value in zip(candidates, evidence, strict=True) if value > 0]

    def _map(self, work: Callable[[_Lane, _Job], _Result], jobs: Sequence[_Job]) -> list[_Result]:
        """``work(lane, job)`` for every job, in the order of ``jobs``: lane ``i`` takes every
        ``lanes``-th job, lane 0 in this thread."""
        lanes = len(self._lanes)

        def lane(index: int) -> list[_Result]:
            return [work(self._lanes[index], job) for job in jobs[index::lanes]]

        others = [self._pool.submit(lane, i) for i in range(1, lanes)] if self._pool else []
        try:
            mine = lane(0)
        finally:
            wait(others)  # no lane is left running past this call, even on an error
        by_lane = [mine, *(future.result() for future in others)]
        return [by_lane[i % lanes][i // lanes] for i in range(len(jobs))]

    def _invoke(
        self, interpreter: Any, tensor: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The model's raw regressors (A, 16) and scores (A,) for one input image."""
        interpreter.set_tensor(self._input["index"], tensor[np.newaxis])
        interpreter.invoke()
        raw_boxes = interpreter.get_tensor(self._regressors)[0]
        return raw_boxes, sigmoid_scores(interpreter.get_tensor(self._scores)[0])

    def _votes(self, frame_bgr: ImageU8, lane: _Lane, candidate: _Candidate) -> int:
        """The Haar cascade's votes on the candidate (``second_look.haar_votes``)."""
        assert lane.cascade is not None  # lanes have cascades wherever looks are taken
        return haar_votes(lane.cascade, frame_bgr, candidate.box_xyxy)

    def _look(self, lane: _Lane, job: _LookJob) -> float:
        """The best score of a face found again on the box (IoU >= ``LOOK_IOU``) in the square
        of ``context`` x its side around it; 0.0 where none is. The square is cut from the
        smallest of ``sources`` at least as sharp as the model will see it."""
        sources, box_xyxy, context = job
        size = self._spec.input_size
        needed = size / max(1.0, context * float(np.max(box_xyxy[2:4] - box_xyxy[0:2])))
        source_scale, source = next(
            ((scale, image) for scale, image in sources if scale >= needed), sources[-1]
        )
        square, scale, corner = context_square(source, box_xyxy, context, size, source_scale)
        tensor, _ = letterbox_rgb(square, size)
        raw_boxes, scores = self._invoke(lane.interpreter, tensor)
        keep = scores >= LOOK_FLOOR
        if not keep.any():
            return 0.0
        decoded = decode_boxes_xyxy(raw_boxes[keep], self._anchors[keep], self._spec.box_scale)
        boxes = to_frame_xyxy(decoded, Letterbox(scale, 0, 0), size, corner)
        overlaps = iou_matrix_xyxy(np.asarray(box_xyxy, np.float32)[np.newaxis, :4], boxes)[0]
        matched = overlaps >= LOOK_IOU
        return float(scores[keep][matched].max()) if matched.any() else 0.0

    def _detect_region(self, lane: _Lane, job: _Region, frame_wh: tuple[int, int]) -> Found:
        """Rows (K, 8) of frame-pixel box xyxy and eyes (``ssd.decode_eyes_xyxy``) and their
        scores, found by ``lane``'s interpreter in one region of the frame (``_Region``).

        In a tile (a region smaller than the frame), a box that reaches a side that is not a
        side of the frame is dropped (a face cut by the tile, which a neighbouring tile or the
        whole frame sees whole), and so is a box larger than ``TILE_MAX_FACE`` of the tile (the
        whole frame sees such a face at a scale the model knows; in a tile they were false).
        """
        source, scale, (x, y, w, h), whole_region = job
        size = self._spec.input_size
        left, top = round(x * scale), round(y * scale)
        cut = source[top : top + max(1, round(h * scale)), left : left + max(1, round(w * scale))]
        tensor, in_cut = letterbox_rgb(cut, size)
        letterbox = Letterbox(in_cut.scale * scale, in_cut.pad_x, in_cut.pad_y)
        origin = (left / scale, top / scale)
        raw_boxes, scores = self._invoke(lane.interpreter, tensor)
        keep = scores >= self._min_score
        if not keep.any():
            return np.zeros((0, 8), np.float32), np.zeros((0,), np.float32)
        anchors, box_scale = self._anchors[keep], self._spec.box_scale
        pixels = to_frame_xyxy(
            decode_boxes_xyxy(raw_boxes[keep], anchors, box_scale), letterbox, size, origin
        )
        eyes = to_frame_xyxy(
            decode_eyes_xyxy(raw_boxes[keep], anchors, box_scale), letterbox, size, origin
        )
        rows = np.concatenate([pixels, eyes], axis=1)
        width, height = frame_wh
        if whole_region or (w, h) == (width, height):
            return rows, scores[keep]
        margin = 0.02 * max(w, h)
        sides = np.maximum(pixels[:, 2] - pixels[:, 0], pixels[:, 3] - pixels[:, 1])
        whole = (
            ((pixels[:, 0] > x + margin) | (x == 0))
            & ((pixels[:, 1] > y + margin) | (y == 0))
            & ((pixels[:, 2] < x + w - margin) | (x + w >= width))
            & ((pixels[:, 3] < y + h - margin) | (y + h >= height))
            & (sides <= TILE_MAX_FACE * max(w, h))
        )
        return rows[whole].astype(np.float32), scores[keep][whole]
