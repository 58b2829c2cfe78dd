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

Then, from the repository root (this script runs itself with ``--fer-only`` under
``--fer-python`` for the fer half and reads its JSON from the last line of its output):

    .venv/bin/python -m bench.fer_baseline [--seconds 15] [--detectors haar,blazeface]
        [--fer-python .venv-bench/bin/python] [--out var/bench/fer_baseline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "recordings" / "demo"


def recorded_frames() -> list[Any]:
    """The demo recording's frames, decoded; stdlib, numpy and cv2 only (runs under fer's venv)."""
    index = json.loads((RECORDING / "recording.json").read_text())
    return [
        cv2.imread(str(RECORDING / frame["file"]), cv2.IMREAD_COLOR) for frame in index["frames"]
    ]


def loop_fps(step: Callable[[Any], int], frames: Sequence[Any], seconds: float) -> dict[str, float]:
    """Frames per second and faces per frame of ``step(frame) -> faces`` over ``seconds``."""
    step(frames[0])  # warm-up
    count = faces = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        faces += step(frames[count % len(frames)])
        count += 1
    elapsed = time.perf_counter() - start
    return {"frames": count, "fps": count / elapsed, "faces_per_frame": faces / count}


def fer_only(seconds: float) -> dict[str, Any]:
    """fer's loop in this interpreter (fer's venv)."""
    import fer
    from fer.fer import FER

    detector = FER()
    result = loop_fps(
        lambda frame: len(detector.detect_emotions(frame)), recorded_frames(), seconds
    )
    return {"name": f"fer {fer.__version__} (Haar + TFLite 64x64)", **result}


def ours(detector_name: str, seconds: float) -> dict[str, Any]:
    """Our detector and classifier, in this process, on the same frames."""
    sys.path.insert(0, str(ROOT))
    from stages.classifier import load_classifier
    from stages.detectors import build_detector, framing_for
    from stages.framing import model_crop

    classifier = load_classifier(ROOT / "models" / "emotion_model.keras")
    detector = build_detector(detector_name)
    framing = framing_for(detector_name)

    def step(frame: Any) -> int:
        found = detector.detect(frame)
        if found:
            faces = np.stack(
                [
                    model_crop(frame, face.box_xywh, framing, classifier.input_hw, face.roll_deg)
                    for face in found
                ]
            )
            classifier.classify(faces[..., np.newaxis])
        return len(found)

    result = loop_fps(step, recorded_frames(), seconds)
    return {"name": f"ours ({detector_name} + {classifier.version})", **result}


def run_fer(python: Path, seconds: float) -> dict[str, Any]:
    """fer's half in its venv; its JSON is the last line of its output."""
    if not python.exists():
        raise SystemExit(f"{python} not found: make the fer venv first (see this script's doc)")
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--fer-only", "--seconds", str(seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 180,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"fer run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per row")
    parser.add_argument("--detectors", default="haar,blazeface", help="ours, comma-separated")
    parser.add_argument("--fer-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--fer-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("var/bench/fer_baseline.json"))
    args = parser.parse_args(argv)
    if args.fer_only:
        print(json.dumps(fer_only(args.seconds)))
        return 0

    sys.path.insert(0, str(ROOT))
    from bench.common import print_table, write_result

    baseline = run_fer(args.fer_python, args.seconds)
    rows = [baseline] + [ours(name, args.seconds) for name in args.detectors.split(",")]
    for row in rows:
        row["fps_vs_fer"] = row["fps"] / baseline["fps"]
    print_table(
        ["pipeline", "frames", "faces/frame", "fps", "x fer"],
        [[r["name"], r["frames"], r["faces_per_frame"], r["fps"], r["fps_vs_fer"]] for r in rows],
    )
    write_result(args.out, "fer_baseline", {"seconds": args.seconds, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
