"""The ``fer`` package's ``FER().detect_emotions`` loop vs ours, on the same recorded frames.

fer is what a user would otherwise pick: OpenCV's Haar cascade plus its quantized 64x64 TFLite
emotion model (its defaults, ``FER()``). Ours is our detector plus our classifier (LiteRT) in one
process, frame by frame, all of a frame's faces in one call: decode is left out of both. Each
runs over the demo recording in a loop for ``--seconds``; the table gives frames per second and
the ratio ours / fer.

fer runs in its own venv, so that its dependencies never reach .venv. Its declared ones pull in
facenet-pytorch (torch), moviepy, ffmpeg-python and opencv-contrib-python, none of which
``FER(mtcnn=False).detect_emotions`` needs, so it is installed with ``--no-deps`` on top of the
few it does need (bench/requirements-fer.txt):

    .venv/bin/python -m venv .venv-bench
    .venv-bench/bin/pip install -r bench/requirements-fer.txt
    .venv-bench/bin/pip install --no-deps fer==25.10.3

Then, from the repository root (fer's half runs as ``bench/fer_half.py loop`` under
``--fer-python``):

    .venv/bin/python -m bench.fer_baseline [--seconds 15] [--detectors haar,blazeface]
        [--models models/emotion_model.keras,runs/other/emotion_model.keras]
        [--mirror alternate,always] [--classify-every 1,2]
        [--fer-python .venv-bench/bin/python] [--out var/bench/fer_baseline.json]
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import MODEL, ROOT, BenchSettings, print_table, write_result
from bench.fer_half import loop_fps, recorded_frames, run_fer_half
from shared.messages import FrameHeader
from shared.settings import load_settings
from stages.batching import classify_frames
from stages.classifier import load_classifier
from stages.detectors import build_detector, framing_for
from stages.faces import label_faces, prepare_image
from stages.settings import FaceSettings
from stages.tracker import tracker_for
from stages.views import DEFAULT_POLICY, MirrorPolicy


def ours(
    detector_name: str, model: Path, seconds: float, mirror: MirrorPolicy, every: int
) -> dict[str, Any]:
    """Our detector and classifier, in this process, on the same frames: the worker's stages
    (detect, crop, classify each face as ``mirror`` chooses its views, a followed face every
    ``every`` frames, label through the worker's tracker) on decoded frames."""
    classifier = load_classifier(model)
    detector = build_detector(detector_name)
    framing = framing_for(detector_name)
    tracker = tracker_for(FaceSettings())
    seq = itertools.count()

    def step(frame: Any) -> int:
        header = FrameHeader(
            stream_id="bench", seq=next(seq), captured_at_ns=1, width=640, height=480
        )
        prepared = prepare_image(
            header, frame, detector=detector, input_hw=classifier.input_hw, framing=framing
        )
        (rows,), _, _ = classify_frames(
            [prepared], classifier, mirror, every=every, carried=tracker.smoothed
        )
        return len(label_faces(prepared, rows, tracker))

    result = loop_fps(step, recorded_frames(), seconds)
    name = f"ours ({detector_name} + {classifier.version}, mirror {mirror}, every {every})"
    return {"name": name, **result}


class FerBaselineBench(BenchSettings):
    """The ``fer`` package's ``FER().detect_emotions`` loop vs ours, on the same recorded
    frames."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.fer_baseline")

    seconds: float = Field(default=15.0, gt=0, description="Per row.")
    detectors: list[str] = Field(default=["haar", "blazeface"], description="Ours.")
    models: list[Path] = Field(
        default=[MODEL], description="Model files, each with every detector."
    )
    mirror: list[MirrorPolicy] = Field(
        default=[DEFAULT_POLICY],
        description="Mirror views policies (stages.views), each with every model and detector.",
    )
    classify_every: list[int] = Field(
        default=[FaceSettings().classify_every],
        description="How often a followed face is classified (stages.views.due_faces), each "
        "with every policy, model and detector.",
    )
    fer_python: Path = Field(
        default=ROOT / ".venv-bench" / "bin" / "python", description="fer's venv's Python."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(FerBaselineBench, argv)
    baseline = run_fer_half(args.fer_python, "loop", str(args.seconds), args.seconds + 180)
    rows = [baseline] + [
        ours(name, model, args.seconds, mirror, every)
        for model in args.models
        for name in args.detectors
        for mirror in args.mirror
        for every in args.classify_every
    ]
    for row in rows:
        row["fps_vs_fer"] = row["fps"] / baseline["fps"]
    print_table(
        ["pipeline", "frames", "faces/frame", "fps", "x fer"],
        [[r["name"], r["frames"], r["faces_per_frame"], r["fps"], r["fps_vs_fer"]] for r in rows],
    )
    write_result(
        args.out_file("fer_baseline"), "fer_baseline", {"seconds": args.seconds, "rows": rows}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
