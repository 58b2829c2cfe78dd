"""Time per stage of one frame on the demo recording: decode, detect, crop, classify, encode.

decode: the worker's ``decode_jpeg`` of the capture's JPEG; detect: the chosen detector on the
640x480 frame; crop: ``model_crop`` of every face found (the worker's framing); classify: one
``classify`` call with the frame's faces, each in the views the worker's ``--mirror`` chooses
(``stages.views``), a followed face every ``--classify-every`` frames, and the label tracker's
update; encode: ``encode_jpeg`` of the 640x480 frame (what
capture does per frame, and the display per frame it serves). Runs the recording in a loop
for ``--seconds``.

    .venv/bin/python -m bench.stages [--detectors haar,blazeface] [--seconds 10]
        [--mirror alternate] [--classify-every 2] [--out var/bench/stages.json]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.common import (
    MODEL,
    BenchSettings,
    RecordedFrame,
    Timings,
    load_frames,
    print_table,
    write_result,
)
from shared.image import decode_jpeg, encode_jpeg
from shared.messages import FrameHeader
from shared.settings import load_settings
from stages.batching import classify_frames
from stages.classifier import Classifier, load_classifier
from stages.detectors import build_detector, framing_for
from stages.faces import PreparedFrame, label_faces
from stages.framing import model_crop
from stages.settings import FaceSettings
from stages.tracker import tracker_for
from stages.views import DEFAULT_POLICY, MirrorPolicy

STAGES = ("decode", "detect", "crop", "classify", "encode")


def measure(
    detector_name: str,
    classifier: Classifier,
    frames: Sequence[RecordedFrame],
    seconds: float,
    *,
    mirror: MirrorPolicy = DEFAULT_POLICY,
    every: int = 1,
) -> dict[str, Any]:
    """Seconds per stage per frame for one detector, over the looped recording; each face
    classified in the views ``mirror`` chooses, a followed face every ``every`` frames, and
    labelled through the worker's tracker (part of the classify stage)."""
    detector = build_detector(detector_name)
    tracker = tracker_for(FaceSettings())
    framing = framing_for(detector_name)
    detector.detect(frames[0].frame_bgr)
    spent: dict[str, list[float]] = {stage: [] for stage in STAGES}
    faces_seen = 0
    deadline = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < deadline or index < 3:
        frame = frames[index % len(frames)]
        index += 1
        t0 = time.perf_counter()
        frame_bgr = decode_jpeg(frame.jpeg)
        t1 = time.perf_counter()
        found = detector.detect(frame_bgr)
        t2 = time.perf_counter()
        crops = [
            model_crop(frame_bgr, face.box_xywh, framing, classifier.input_hw, face.roll_deg)
            for face in found
        ]
        faces = (
            np.stack(crops)[..., np.newaxis]
            if crops
            else np.zeros((0, *classifier.input_hw, 1), np.uint8)
        )
        prepared = PreparedFrame(
            header=FrameHeader(
                stream_id="bench", seq=index, captured_at_ns=1, width=640, height=480
            ),
            started_ns=0,
            boxes_xywh=[face.box_xywh for face in found],
            faces_gray=faces,
            track_ids=tuple(face.track_id for face in found),
            ages=tuple(face.age for face in found),
        )
        t3 = time.perf_counter()
        (rows,), _, _ = classify_frames(
            [prepared], classifier, mirror, every=every, carried=tracker.smoothed
        )
        label_faces(prepared, rows, tracker)
        t4 = time.perf_counter()
        encode_jpeg(frame_bgr)
        t5 = time.perf_counter()
        for stage, start, end in zip(
            STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True
        ):
            spent[stage].append(end - start)
        faces_seen += len(found)
    stats = {stage: Timings.of(values) for stage, values in spent.items()}
    total = Timings.of([sum(parts) for parts in zip(*spent.values(), strict=True)])
    return {
        "detector": detector_name,
        "frames": index,
        "faces_per_frame": faces_seen / index,
        "stages": {s: {"median_ms": t.median_ms, "p95_ms": t.p95_ms} for s, t in stats.items()},
        "total": {"median_ms": total.median_ms, "p95_ms": total.p95_ms},
        "serial_frames_per_s": 1000 / total.mean_ms,
    }


class StagesBench(BenchSettings):
    """Time per stage of one frame on the demo recording: decode, detect, crop, classify, encode."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.stages")

    detectors: list[str] = Field(default=["haar", "blazeface"], description="Detectors.")
    seconds: float = Field(default=10.0, gt=0, description="Per detector.")
    model: Path = Field(default=MODEL, description="Model file.")
    mirror: MirrorPolicy = Field(default=DEFAULT_POLICY, description="Views (stages.views).")
    classify_every: int = Field(
        default=FaceSettings().classify_every,
        ge=1,
        description="How often a followed face is classified (stages.views.due_faces).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(StagesBench, argv)
    classifier = load_classifier(args.model)
    frames = load_frames()
    results = [
        measure(
            name, classifier, frames, args.seconds, mirror=args.mirror, every=args.classify_every
        )
        for name in args.detectors
    ]
    rows = []
    for result in results:
        for stage in (*STAGES, "total"):
            timing = result["total"] if stage == "total" else result["stages"][stage]
            rows.append([result["detector"], stage, timing["median_ms"], timing["p95_ms"]])
    print_table(["detector", "stage", "median ms", "p95 ms"], rows)
    for result in results:
        print(
            f"{result['detector']}: {result['frames']} frames, "
            f"{result['faces_per_frame']:.2f} faces/frame, "
            f"{result['serial_frames_per_s']:.1f} frames/s through all stages in series"
        )
    write_result(args.out_file("stages"), "stages", {"model": str(args.model), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
