"""One frame through the worker's stages: decode, detect, crop faces, classify, build the result.

Split in two halves, ``prepare_frame`` (everything before the model) and ``finish_frame``, so
that faces of several frames can share one ``classify`` call (``batching.classify_frames``);
``label_faces`` turns a frame's probabilities into faces, through the tracker when there is one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.image import BoxXYWH, ImageError, ImageU8, SizeHW, decode_jpeg
from shared.labels import EMOTIONS
from shared.messages import MAX_FACES, Face, FrameHeader, ResultHeader, StageTimings

from .detectors import DetectedFace, FaceDetector
from .framing import Framing, model_crop
from .model_base import Probabilities
from .tracker import FaceTracker

__all__ = ["PreparedFrame", "finish_frame", "label_faces", "prepare_frame", "prepare_image"]

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class PreparedFrame:
    """A decoded frame's faces, ready for the model; ``error`` set when it could not be read."""

    header: FrameHeader
    started_ns: int
    boxes_xywh: list[BoxXYWH]
    faces_gray: npt.NDArray[np.uint8]
    decode_ms: float = 0.0
    detect_ms: float = 0.0
    error: str | None = None
    #: The detector's identity of each face (``DetectedFace.track_id``), where it follows faces,
    #: and the frames it followed each before this one (``DetectedFace.age``).
    track_ids: tuple[int | None, ...] = ()
    ages: tuple[int, ...] = ()


def _ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _keep_largest(faces: list[DetectedFace], limit: int) -> list[DetectedFace]:
    """At most ``limit`` faces, the largest, in reading order (left to right, top to bottom)."""
    largest = sorted(faces, key=lambda f: f.box_xywh[2] * f.box_xywh[3], reverse=True)[:limit]
    return sorted(largest, key=lambda f: (f.box_xywh[0], f.box_xywh[1]))


def prepare_frame(
    header: FrameHeader,
    jpeg: bytes,
    *,
    detector: FaceDetector,
    input_hw: SizeHW,
    framing: Framing,
) -> PreparedFrame:
    """Decode, detect and crop each face as the model learned (``framing``); a JPEG that does
    not decode gives a frame with ``error`` set."""
    started_ns = time.perf_counter_ns()
    frame_bgr: ImageU8 | None
    try:
        frame_bgr, error = decode_jpeg(jpeg), None
    except ImageError as decode_error:
        frame_bgr, error = None, f"corrupt jpeg: {decode_error}"
    return prepare_image(
        header,
        frame_bgr,
        detector=detector,
        input_hw=input_hw,
        framing=framing,
        error=error,
        started_ns=started_ns,
        decode_ms=_ms_since(started_ns),
    )


def prepare_image(
    header: FrameHeader,
    frame_bgr: ImageU8 | None,
    *,
    detector: FaceDetector,
    input_hw: SizeHW,
    framing: Framing,
    error: str | None = None,
    started_ns: int | None = None,
    decode_ms: float = 0.0,
) -> PreparedFrame:
    """Detect and crop the faces of a decoded frame; without one (``error`` says why) a frame
    with no faces and ``error`` set."""
    started_ns = time.perf_counter_ns() if started_ns is None else started_ns
    height, width = input_hw
    no_faces = np.zeros((0, height, width, 1), dtype=np.uint8)
    if frame_bgr is None:
        return PreparedFrame(
            header=header,
            started_ns=started_ns,
            boxes_xywh=[],
            faces_gray=no_faces,
            decode_ms=decode_ms,
            error=(error or "no image")[:MAX_ERROR_CHARS],
        )
    detect_start_ns = time.perf_counter_ns()
    found = _keep_largest(detector.detect(frame_bgr, header.stream_id), MAX_FACES)
    faces = [model_crop(frame_bgr, f.box_xywh, framing, input_hw, f.roll_deg) for f in found]
    faces_gray = np.stack(faces)[..., np.newaxis] if faces else no_faces
    return PreparedFrame(
        header=header,
        started_ns=started_ns,
        boxes_xywh=[f.box_xywh for f in found],
        faces_gray=faces_gray,
        decode_ms=decode_ms,
        detect_ms=_ms_since(detect_start_ns),
        track_ids=tuple(f.track_id for f in found),
        ages=tuple(f.age for f in found),
    )


def label_faces(
    prepared: PreparedFrame,
    probabilities: Probabilities,
    tracker: FaceTracker | None = None,
) -> tuple[Face, ...]:
    """The frame's faces from their probabilities (N, 7).

    Without a tracker each face is labelled with its most probable emotion; with one, it gets
    its track id, the smoothed probabilities and the held label (tracks follow the detector's
    identities where it gives them, else the boxes' overlap). Frames that failed to decode
    do not touch the tracker.
    """
    if len(probabilities) != len(prepared.boxes_xywh):
        raise ValueError(
            f"expected one probability row per face ({len(prepared.boxes_xywh)}), "
            f"found {len(probabilities)}"
        )
    rows = np.clip(probabilities, 0.0, 1.0)
    if tracker is None or prepared.error is not None:
        return tuple(
            Face.from_probabilities(box, row)
            for box, row in zip(prepared.boxes_xywh, rows, strict=True)
        )
    header = prepared.header
    tracked = tracker.update(
        header.stream_id,
        header.seq,
        header.captured_at_ns,
        prepared.boxes_xywh,
        rows,
        identities=prepared.track_ids or None,
    )
    faces = []
    for box, face in zip(prepared.boxes_xywh, tracked, strict=True):
        values = tuple(float(v) for v in np.clip(face.probabilities, 0.0, 1.0))
        faces.append(
            Face(
                box_xywh=box,
                probabilities=values,
                label=EMOTIONS[face.label_index],
                score=values[face.label_index],
                track_id=face.track_id,
            )
        )
    return tuple(faces)


def finish_frame(
    prepared: PreparedFrame,
    faces: tuple[Face, ...],
    *,
    classify_ms: float,
    worker_id: str,
    model_version: str,
) -> ResultHeader:
    """The result message for a prepared frame and its labelled faces."""
    header = prepared.header
    return ResultHeader(
        stream_id=header.stream_id,
        seq=header.seq,
        captured_at_ns=header.captured_at_ns,
        worker_id=worker_id,
        model_version=model_version,
        faces=faces,
        timings=StageTimings(
            decode_ms=prepared.decode_ms,
            detect_ms=prepared.detect_ms,
            classify_ms=classify_ms,
            total_ms=_ms_since(prepared.started_ns),
        ),
        error=prepared.error,
        completed_at_ns=time.time_ns(),
    )
