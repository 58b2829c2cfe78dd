"""``python -m commands.analyze PATH [--out DIR]``: one image, a folder of images or a video
through the worker's own detect -> crop -> classify code, in this process (no sockets).

Writes to DIR (default ``var/analyze/<name>/``): ``results.jsonl`` (the display's jsonl schema,
one line per image or frame, plus ``source`` and, for a video, ``time_s``), annotated copies
(``annotated/<image>`` or ``annotated.mp4``), for a video ``timeline.csv`` and ``timeline.png``,
and ``summary.json``; shows a progress bar and prints a summary. Exit 0 when done, 2 when it
cannot start (a missing path, not an image or video, a bad model file).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
from tqdm import tqdm

from shared.file_sinks import SinkError, VideoFileSink
from shared.image import ImageU8
from shared.labels import EMOTIONS
from shared.messages import FrameHeader, ResultHeader
from shared.model_file import ModelFileError
from shared.runtime import setup_logging
from shared.settings import EXIT_CANNOT_START, load_settings
from stages.batching import classify_frames
from stages.classifier import load_classifier
from stages.detectors import DetectorError, FaceDetector, detector_for, framing_for
from stages.faces import finish_frame, label_faces, prepare_image
from stages.framing import Framing
from stages.model_base import Classifier
from stages.render import AssetError, Sprites, load_sprites, render_frame
from stages.tracker import FaceTracker, tracker_for
from stages.views import MirrorPolicy

from .inputs import FALLBACK_FPS, Frame, InputError, Inputs, open_inputs
from .settings import AnalyzeSettings
from .timeline import draw_timeline, timeline_rows, write_timeline_csv

__all__ = ["Summary", "analyze", "main"]

log = logging.getLogger(__name__)

WORKER_ID = "analyze"


@dataclass
class Summary:
    """What an analysis went through and found."""

    path: str
    kind: str
    frames: int = 0
    unreadable: int = 0
    faces: int = 0
    tracks: int = 0
    emotions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        unit = "frames" if self.kind == "video" else "images"
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        found = ", ".join(f"{e} {self.emotions[e]}" for e in EMOTIONS if self.emotions[e])
        tracked = f" ({self.tracks} tracked)" if self.kind == "video" else ""
        return [
            f"analyzed {self.path}: {self.frames} {unit} in {self.seconds:.1f} s "
            f"({rate:.1f} {unit}/s)",
            f"faces: {self.faces}{tracked}; unreadable {unit}: {self.unreadable}",
            f"emotions: {found or 'none'}",
            f"wrote: {', '.join(self.outputs)}",
        ]


class _Annotated:
    """Annotated copies: one JPEG per image, or one video at the source's frame rate (the
    display's video sink)."""

    def __init__(self, out: Path, inputs: Inputs) -> None:
        video = inputs.kind == "video"
        fps = inputs.fps or FALLBACK_FPS
        self._video = VideoFileSink(out / "annotated.mp4", fps) if video else None
        self.path = out / "annotated.mp4" if self._video is not None else out / "annotated"
        if self._video is None:
            self.path.mkdir(parents=True, exist_ok=True)

    def add(self, frame: Frame, picture: ImageU8) -> None:
        if self._video is not None:
            self._video.show(picture)
            return
        name = Path(frame.source).with_suffix(".jpg").name
        cv2.imwrite(str(self.path / name), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])

    def close(self) -> None:
        if self._video is not None:
            self._video.close()


def _stream_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64] or "analyze"


def _result(
    frame: Frame,
    stream_id: str,
    started_ns: int,
    *,
    framing: Framing,
    classifier: Classifier,
    tracker: FaceTracker | None,
    detector: FaceDetector,
    mirror: MirrorPolicy,
    every: int,
) -> ResultHeader:
    """One frame through detect -> crop -> classify -> label, as the worker would answer it."""
    height, width = frame.image.shape[:2] if frame.image is not None else (1, 1)
    offset_ns = round((frame.time_s or 0.0) * 1e9)
    header = FrameHeader(
        stream_id=stream_id,
        seq=frame.index,
        captured_at_ns=started_ns + offset_ns,
        width=width,
        height=height,
    )
    prepared = prepare_image(
        header,
        frame.image,
        detector=detector,
        input_hw=classifier.input_hw,
        framing=framing,
        error=frame.error,
    )
    (probabilities,), classify_ms, _ = classify_frames(
        [prepared],
        classifier,
        mirror,
        every=every,
        carried=tracker.smoothed if tracker is not None else None,
    )
    return finish_frame(
        prepared,
        label_faces(prepared, probabilities, tracker),
        classify_ms=classify_ms,
        worker_id=WORKER_ID,
        model_version=classifier.version,
    )


def _record(frame: Frame, result: ResultHeader) -> dict[str, Any]:
    """The result as a results.jsonl line: the display's schema, the source, a video's time."""
    record = result.model_dump(mode="json")
    record["source"] = frame.source
    if frame.time_s is not None:
        record["time_s"] = round(frame.time_s, 4)
    return record


def analyze(settings: AnalyzeSettings, progress: IO[str] | None = None) -> Summary:
    """Run the analysis the settings describe; raises InputError, ModelFileError,
    DetectorError or AssetError when it cannot start."""
    inputs = open_inputs(settings.path)
    out = settings.out or Path("var") / "analyze" / inputs.name
    out.mkdir(parents=True, exist_ok=True)
    sprites: Sprites = load_sprites()
    detector = detector_for(settings)
    classifier = load_classifier(
        settings.model_path, settings.classifier_runtime, settings.tf_threads
    )
    framing = framing_for(settings.detector, settings.face_margin, settings.align_roll)
    tracker = tracker_for(settings) if inputs.kind == "video" else None
    summary = Summary(str(settings.path), inputs.kind)
    stream_id = _stream_id(inputs.name)
    started_ns = time.time_ns()
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    annotated = _Annotated(out, inputs)
    results_path = out / "results.jsonl"
    bar = tqdm(
        total=inputs.total or None,
        unit="frame" if inputs.kind == "video" else "image",
        desc=inputs.name,
        file=progress if progress is not None else sys.stderr,
        disable=progress is None and not sys.stderr.isatty(),
        mininterval=0.5,
    )
    try:
        with results_path.open("w", encoding="utf-8") as results:
            for frame in inputs.frames():
                result = _result(
                    frame,
                    stream_id,
                    started_ns,
                    framing=framing,
                    classifier=classifier,
                    tracker=tracker,
                    detector=detector,
                    # One view a frame needs the tracker's smoothing to average the two:
                    # without it (photographs) every face gets both.
                    mirror=settings.mirror if tracker is not None else "always",
                    every=settings.classify_every,
                )
                record = _record(frame, result)
                results.write(json.dumps(record, separators=(",", ":")) + "\n")
                records.append(record)
                summary.frames += 1
                if frame.image is None:
                    summary.unreadable += 1
                    log.warning("%s: %s", frame.source, frame.error)
                else:
                    annotated.add(frame, render_frame(frame.image, result.faces, sprites))
                summary.faces += len(result.faces)
                summary.emotions.update(face.label for face in result.faces)
                bar.update(1)
    finally:
        bar.close()
        annotated.close()
    summary.outputs = [str(results_path), str(annotated.path)]
    if inputs.kind == "video":
        rows = timeline_rows(records)
        summary.tracks = len({row.track_id for row in rows})
        write_timeline_csv(out / "timeline.csv", rows)
        duration_s = summary.frames / (inputs.fps or FALLBACK_FPS)
        cv2.imwrite(str(out / "timeline.png"), draw_timeline(rows, duration_s))
        summary.outputs += [str(out / "timeline.csv"), str(out / "timeline.png")]
    summary.seconds = time.monotonic() - started
    summary_path = out / "summary.json"
    summary_path.write_text(
        json.dumps(
            {
                "path": summary.path,
                "kind": summary.kind,
                "frames": summary.frames,
                "unreadable": summary.unreadable,
                "faces": summary.faces,
                "tracks": summary.tracks,
                "emotions": {e: summary.emotions[e] for e in EMOTIONS},
                "seconds": round(summary.seconds, 2),
                "model_version": classifier.version,
                "detector": settings.detector,
            },
            indent=2,
        )
        + "\n"
    )
    summary.outputs.append(str(summary_path))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the analysis is written, 2 when it cannot start, 1 on a failure."""
    settings = load_settings(AnalyzeSettings, argv)
    setup_logging("analyze", settings.log_level)
    try:
        summary = analyze(settings)
    except (InputError, ModelFileError, DetectorError, AssetError, SinkError) as error:
        print(f"commands.analyze: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    except Exception:
        log.exception("analysis failed")
        return 1
    print("\n".join(summary.lines()))
    return 0
