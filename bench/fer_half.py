"""The ``fer`` package's half of the benches, run under fer's own venv (``.venv-bench``, see
``bench/fer_baseline.py``), with the standard library, numpy and OpenCV alone. Each mode prints
one JSON line, the last of its output, for the bench that started it:

    .venv-bench/bin/python bench/fer_half.py loop SECONDS    # bench.fer_baseline
    .venv-bench/bin/python bench/fer_half.py scenes FOLDER   # bench.accuracy
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "recordings" / "demo"
#: fer's emotion names, in our label order (shared.labels.EMOTIONS).
FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def recorded_frames() -> list[Any]:
    """The demo recording's frames, decoded."""
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


def fer_loop(seconds: float) -> dict[str, Any]:
    """fer's ``detect_emotions`` over the recording for ``seconds``."""
    import fer
    from fer.fer import FER

    detector = FER()
    result = loop_fps(
        lambda frame: len(detector.detect_emotions(frame)), recorded_frames(), seconds
    )
    return {"name": f"fer {fer.__version__} (Haar + TFLite 64x64)", **result}


def fer_scenes(folder: Path) -> dict[str, Any]:
    """fer's faces (box and label) for every JPEG in ``folder``, and its median ms a frame."""
    from fer.fer import FER

    detector = FER()
    frames = []
    spent = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        start = time.perf_counter()
        found = detector.detect_emotions(image)
        spent.append((time.perf_counter() - start) * 1000)
        frames.append(
            [
                {
                    "box": [int(v) for v in face["box"]],
                    "label": int(np.argmax([face["emotions"][name] for name in FER_ORDER])),
                }
                for face in found
            ]
        )
    return {"frames": frames, "detect_ms": float(np.median(spent))}


def run_fer_half(python: Path, mode: str, argument: str, timeout_s: float) -> dict[str, Any]:
    """Run one mode of this file under ``python`` (fer's venv) and return its JSON."""
    if not python.exists():
        raise SystemExit(f"{python} not found: make the fer venv first (bench/fer_baseline.py)")
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), mode, argument],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"fer run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("loop", "scenes"):
        print("usage: fer_half.py loop SECONDS | scenes FOLDER", file=sys.stderr)
        return 2
    mode, argument = argv
    result = fer_loop(float(argument)) if mode == "loop" else fer_scenes(Path(argument))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
