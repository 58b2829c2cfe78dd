"""BlazeFace's single pass: the network on one region of the frame, decoded to frame pixels.

The ``.tflite`` files come from the mediapipe wheel (``scripts/extract_detectors.py``; licence
and sha256 in ``assets/blazeface/``) and run on LiteRT (``ai-edge-litert``; no mediapipe, no
TensorFlow). A region is letterboxed to the model input, the SSD outputs decoded with ``ssd``
and mapped back to frame pixels with ``letterbox``: rows of BlazeFace's own box (brows to
mouth) and its two eyes. Several regions share out over lanes, one single-threaded interpreter
per core (and, where second looks are taken, one Haar cascade each), since LiteRT lets go of
the GIL while it runs. A pass is not for two threads at once: its caller holds a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from shared.image import ImageU8, iou_matrix_xyxy

from .base import DetectorError
from .haar import load_cascade
from .letterbox import Letterbox, letterbox_rgb, to_frame_xyxy
from .second_look import LOOK_FLOOR, LOOK_IOU, context_square, haar_votes
from .ssd import AnchorSpec, anchors_cxcy, decode_boxes_xyxy, decode_eyes_xyxy, sigmoid_scores

__all__ = ["TILE_MAX_FACE", "BlazeFacePass", "Found", "LookJob", "Region"]

#: Largest face, as a share of a tile's side, that a tile may report: larger ones the whole frame
#: sees at a scale the model knows. On 300 scenes of FER2013 train/ faces 0.5 and 0.65 would
#: find 0.917 and 0.922 of the faces (0.4: 0.900) for 0.097 and 0.103 false a frame (0.087), but
#: both put a false face on the astronaut's suit in scikit-image's photo, a real one.
TILE_MAX_FACE: Final = 0.4
#: One region's detections: rows (K, 8) of box and eyes in frame pixels, and their scores (K,).
Found = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
#: A look's job: the frame and its smaller copies (scale, image), smallest scale first; a
#: candidate's box (frame pixels, xyxy); the look's context.
LookJob = tuple[list[tuple[float, ImageU8]], npt.NDArray[np.float64], float]
_Job = TypeVar("_Job")
_Result = TypeVar("_Result")


class Region(NamedTuple):
    """A region of the frame (frame pixels) to cut from ``source``, the frame resized by
    ``scale``; a tile unless ``whole`` (every face it shows is reported, as for the frame)."""

    source: ImageU8
    scale: float
    region: tuple[int, int, int, int]
    whole: bool = False


class _Lane(NamedTuple):
    """What one thread runs with: its own interpreter and, with second looks, its own Haar
    cascade (neither may be used by two threads at once)."""

    interpreter: Any
    cascade: cv2.CascadeClassifier | None


def _interpreter(path: Path, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads if threads > 0 else None)
    interpreter.allocate_tensors()
    return interpreter


class BlazeFacePass:
    """The network over regions (``regions``), over looks at candidates (``look_scores``), and
    the Haar cascade's votes on candidates (``votes``), each shared out over the lanes.

    ``looks_taken`` and ``votes_counted`` count what the second look has asked for.
    """

    def __init__(
        self,
        path: Path,
        spec: AnchorSpec,
        *,
        lanes: int,
        threads: int,
        min_score: float,
        cascades: bool,
    ) -> None:
        try:
            interpreters = [_interpreter(path, threads) for _ in range(lanes)]
        except (ValueError, RuntimeError) as error:
            raise DetectorError(f"BlazeFace model could not be loaded: {path}: {error}") from error
        self._lanes = [_Lane(i, load_cascade() if cascades else None) for i in interpreters]
        self._pool = ThreadPoolExecutor(lanes - 1, "blazeface") if lanes > 1 else None
        self._spec = spec
        self._anchors = anchors_cxcy(spec)
        self._min_score = min_score
        self.looks_taken = 0
        self.votes_counted = 0
        (self._input,) = interpreters[0].get_input_details()
        outputs = interpreters[0].get_output_details()
        # Regressors (1, A, 16) and classificators (1, A, 1); tell them apart by shape.
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self._regressors, self._scores = by_width[16], by_width[1]
        expected = (1, spec.input_size, spec.input_size, 3)
        anchors = {int(d["shape"][1]) for d in outputs}
        if tuple(self._input["shape"]) != expected or anchors != {len(self._anchors)}:
            raise DetectorError(
                f"{path}: input {tuple(self._input['shape'])} and {anchors} anchors, expected "
                f"{expected} and {len(self._anchors)} for this BlazeFace variant"
            )

    def regions(self, jobs: Sequence[Region], frame_wh: tuple[int, int]) -> list[Found]:
        """Per region, the rows and scores the network finds in it (``_detect_region``)."""
        return self._map(partial(self._detect_region, frame_wh=frame_wh), jobs)

    def look_scores(self, jobs: Sequence[LookJob]) -> list[float]:
        """Per job, the best score of the candidate found again in its surroundings."""
        self.looks_taken += len(jobs)
        return self._map(self._look, jobs)

    def votes(self, frame_bgr: ImageU8, boxes_xyxy: Sequence[npt.NDArray[np.float64]]) -> list[int]:
        """Per candidate box, the Haar cascade's votes (``second_look.haar_votes``)."""
        self.votes_counted += len(boxes_xyxy)
        return self._map(partial(self._votes, frame_bgr), boxes_xyxy)

    def _map(self, work: Callable[[_Lane, _Job], _Result], jobs: Sequence[_Job]) -> list[_Result]:
        """``work(lane, job)`` for every job, in the order of ``jobs``: lane ``i`` takes every
        ``lanes``-th job, lane 0 in this thread."""
        lanes = len(self._lanes)

        def lane(index: int) -> list[_Result]:
            return [work(self._lanes[index], job) for job in jobs[index::lanes]]

        busy = range(1, min(lanes, len(jobs)))  # a lane with no job is not woken
        others = [self._pool.submit(lane, i) for i in busy] if self._pool else []
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

    def _votes(self, frame_bgr: ImageU8, lane: _Lane, box_xyxy: npt.NDArray[np.float64]) -> int:
        if lane.cascade is None:
            raise DetectorError("this BlazeFace pass was built without Haar cascades")
        return haar_votes(lane.cascade, frame_bgr, box_xyxy)

    def _look(self, lane: _Lane, job: LookJob) -> float:
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

    def _detect_region(self, lane: _Lane, job: Region, frame_wh: tuple[int, int]) -> Found:
        """Rows (K, 8) of frame-pixel box xyxy and eyes (``ssd.decode_eyes_xyxy``) and their
        scores, found by ``lane``'s interpreter in one region of the frame (``Region``).

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
