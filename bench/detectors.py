"""Each face detector on the demo recording: recall, false faces, mean IoU and ms per frame.

Ground truth is recordings/demo/recording.json, whose boxes come from the Haar cascade run on
the portraits (scripts/make_recording.py), so IoU favours Haar-shaped boxes. A face counts as
found when a detection overlaps it with IoU >= 0.3; a detection overlapping no face is a false
positive. Time is ``detector.detect`` on a decoded 640x480 BGR
frame, after one warm-up call. Each detector stops after ``--seconds`` or the whole recording.

    .venv/bin/python -m bench.detectors [--seconds 20] [--detectors haar,blazeface]
        [--out var/bench/detectors.json]
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.common import (
    BenchSettings,
    RecordedFrame,
    Timings,
    load_frames,
    print_table,
    time_calls,
    write_result,
)
from shared.image import BoxXYWH, iou_xywh
from shared.settings import load_settings
from stages.detectors import build_detector, detector_names

MATCH_IOU = 0.3


def score_frame(truth: Sequence[BoxXYWH], found: Sequence[BoxXYWH]) -> tuple[int, int, list[float]]:
    """(faces found, false detections, best IoU of each found face) for one frame."""
    best = [max((iou_xywh(face, box) for box in found), default=0.0) for face in truth]
    false = sum(not any(iou_xywh(face, box) >= MATCH_IOU for face in truth) for box in found)
    hits = [iou for iou in best if iou >= MATCH_IOU]
    return len(hits), false, hits


def measure(name: str, frames: Sequence[RecordedFrame], seconds: float) -> dict[str, Any]:
    """One detector over the frames: quality and time per frame."""
    detector = build_detector(name)
    detector.detect(frames[0].frame_bgr)  # warm-up: lazy allocation, graph tracing
    found: list[list[BoxXYWH]] = []

    def detect(index: int) -> None:
        found.append([face.box_xywh for face in detector.detect(frames[index].frame_bgr)])

    times = time_calls(detect, len(frames), seconds)
    faces = hits = false = 0
    ious: list[float] = []
    for frame, boxes in zip(frames, found, strict=False):
        frame_hits, frame_false, frame_ious = score_frame(frame.faces_xywh, boxes)
        faces += len(frame.faces_xywh)
        hits += frame_hits
        false += frame_false
        ious += frame_ious
    timing = Timings.of(times)
    return {
        "detector": name,
        "frames": len(found),
        "faces": faces,
        "recall": hits / faces if faces else float("nan"),
        "false_positives": false,
        "mean_iou": sum(ious) / len(ious) if ious else float("nan"),
        "median_ms": timing.median_ms,
        "p95_ms": timing.p95_ms,
    }


class DetectorsBench(BenchSettings):
    """Each face detector on the demo recording: recall, false faces, mean IoU and ms per frame."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.detectors")

    seconds: float = Field(default=20.0, gt=0, description="Time limit per detector.")
    detectors: list[str] = Field(
        default_factory=lambda: list(detector_names()),
        description="Detectors (haar first: the baseline).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(DetectorsBench, argv)
    names = args.detectors
    frames = load_frames()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name == "mtcnn" and importlib.util.find_spec("mtcnn") is None:
            skipped[name] = "not installed (pip install -e '.[mtcnn]')"
            continue
        rows.append(measure(name, frames, args.seconds))
    base = next((r["median_ms"] for r in rows if r["detector"] == "haar"), None)
    for row in rows:
        row["ms_vs_haar"] = row["median_ms"] / base if base else float("nan")
    print_table(
        ["detector", "frames", "recall", "false+", "mean IoU", "median ms", "p95 ms", "x haar"],
        [
            [
                r["detector"], r["frames"], r["recall"], r["false_positives"], r["mean_iou"],
                r["median_ms"], r["p95_ms"], r["ms_vs_haar"],
            ]
            for r in rows
        ],
    )  # fmt: skip
    for name, why in skipped.items():
        print(f"{name}: skipped, {why}")
    write_result(
        args.out_file("detectors"),
        "detectors",
        {"match_iou": MATCH_IOU, "rows": rows, "skipped": skipped},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
