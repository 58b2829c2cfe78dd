"""The real services as subprocesses on loopback: sustained fps and capture-to-display latency.

For each configuration (faces per frame x capture mode x workers) this writes a synthetic
640x480 recording (1 face: demo frames with one face; 3 faces: three demo faces side by side
on grey), starts ``services.display`` (jsonl sink only), N ``services.inference`` workers and
``services.capture`` (looping the recording at ``--fps``) on free 127.0.0.1 ports, waits for
the first result plus ``--warmup`` seconds, then counts the results the display writes for
``--seconds``. Latency is the jsonl line's ``received_at_ns`` (display's wall clock when it
took the result and wrote the line) minus the frame's ``captured_at_ns`` (capture's wall
clock): both are time.time_ns() on this host. Everything is stopped (SIGTERM, then SIGKILL)
before the next configuration.

    .venv/bin/python -m bench.pipeline [--seconds 20] [--warmup 5] [--fps 30]
        [--faces 1,3] [--modes live,lossless] [--workers 1,2] [--detector haar]
        [--out var/bench/pipeline.json]
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.common import (
    MODEL,
    ROOT,
    BenchSettings,
    RecordedFrame,
    load_frames,
    print_table,
    write_result,
)
from bench.loopback import free_loopback_port as free_port
from shared.image import BoxXYWH, ImageU8, expand_box_xywh
from shared.settings import load_settings

FRAME_WH = (640, 480)
SYNTHETIC_FRAMES = 60
STARTUP_TIMEOUT_S = 90.0


def three_faces(frames: Sequence[RecordedFrame], index: int) -> tuple[ImageU8, list[BoxXYWH]]:
    """Three recorded faces (with some context) in a row on a grey 640x480 frame."""
    canvas = np.full((FRAME_WH[1], FRAME_WH[0], 3), 128, np.uint8)
    boxes: list[BoxXYWH] = []
    side = 190
    for slot in range(3):
        frame = frames[(index + slot * 37) % len(frames)]
        face = frame.faces_xywh[0]
        x, y, w, h = expand_box_xywh(face, 0.3, FRAME_WH)
        patch = cv2.resize(frame.frame_bgr[y : y + h, x : x + w], (side, side))
        left, top = 20 + slot * (side + 20), 140
        canvas[top : top + side, left : left + side] = patch
        scale_x, scale_y = side / w, side / h
        fx, fy, fw, fh = face
        boxes.append(
            (
                left + round((fx - x) * scale_x),
                top + round((fy - y) * scale_y),
                round(fw * scale_x),
                round(fh * scale_y),
            )
        )
    return canvas, boxes


def write_recording(folder: Path, faces: int, fps: float) -> None:
    """A looping synthetic recording with ``faces`` faces per frame, in the recording format."""
    frames = [f for f in load_frames() if f.faces_xywh]
    (folder / "frames").mkdir(parents=True)
    entries = []
    singles = [f for f in frames if len(f.faces_xywh) == 1]
    for index in range(SYNTHETIC_FRAMES):
        if faces == 1:
            single = singles[index % len(singles)]
            image, boxes = single.frame_bgr, single.faces_xywh
        else:
            image, boxes = three_faces(frames, index)
        name = f"frames/{index:06d}.jpg"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        entries.append({"file": name, "faces": [{"box_xywh": list(b)} for b in boxes]})
    recording = {
        "stream_id": "bench",
        "fps": fps,
        "width": FRAME_WH[0],
        "height": FRAME_WH[1],
        "frames": entries,
    }
    (folder / "recording.json").write_text(json.dumps(recording))


@contextlib.contextmanager
def services(
    folder: Path, mode: str, workers: int, bench: PipelineBench
) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """Display, workers and capture running on free loopback ports; stopped on exit."""
    frames, preview, results = free_port(), free_port(), free_port()
    jsonl = folder / "results.jsonl"
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        "EMOJIFY_CAPTURE_SOURCE": str(folder / "recording"),
        "EMOJIFY_CAPTURE_LOOP": "true",
        "EMOJIFY_CAPTURE_STATUS_PORT": "0",
        "EMOJIFY_CAPTURE_MODE": mode,
        "EMOJIFY_CAPTURE_PACE": "source",
        "EMOJIFY_CAPTURE_FPS": str(bench.fps),
        "EMOJIFY_CAPTURE_FRAMES_ENDPOINT": f"tcp://127.0.0.1:{frames}",
        "EMOJIFY_CAPTURE_PREVIEW_ENDPOINT": f"tcp://127.0.0.1:{preview}",
        "EMOJIFY_WORKER_CAPTURE_ENDPOINTS": f"tcp://127.0.0.1:{frames}",
        "EMOJIFY_WORKER_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_WORKER_MODEL_PATH": str(bench.model.resolve()),
        "EMOJIFY_WORKER_DETECTOR": bench.detector,
        "EMOJIFY_WORKER_RELOAD_CHECK_S": "0",
        "EMOJIFY_DISPLAY_PREVIEW_ENDPOINTS": f"tcp://127.0.0.1:{preview}",
        "EMOJIFY_DISPLAY_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_DISPLAY_SINKS": "jsonl",
        "EMOJIFY_DISPLAY_JSONL_PATH": str(jsonl),
    }
    env.pop("DISPLAY", None)
    commands = [["-m", "services.display"]]
    commands += [["-m", "services.inference", "--worker-id", f"bench-{i}"] for i in range(workers)]
    commands += [["-m", "services.capture"]]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for args in commands:
            log = (folder / f"{args[1]}-{len(started)}.log").open("wb")
            started.append(
                subprocess.Popen(
                    [sys.executable, *args],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        yield jsonl, started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The jsonl lines written so far (a half-written last line is left for later)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    results = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            results.append(json.loads(line))
    return results


def measure(
    faces: int, mode: str, workers: int, args: PipelineBench, scratch: Path
) -> dict[str, Any]:
    """One configuration: start, warm up, count results over the window, stop."""
    folder = scratch / f"{faces}f-{mode}-{workers}w"
    write_recording(folder / "recording", faces, args.fps)
    with services(folder, mode, workers, args) as (jsonl, processes):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not read_results(jsonl):
            dead = [p.args for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-1500:] for p in folder.glob("*.log"))
                raise SystemExit(f"no result within {STARTUP_TIMEOUT_S}s (exited: {dead})\n{logs}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        start_ns = time.time_ns()
        time.sleep(args.seconds)
        end_ns = time.time_ns()
    window = [r for r in read_results(jsonl) if start_ns <= r["received_at_ns"] < end_ns]
    latency_ms = np.asarray(
        [(r["received_at_ns"] - r["captured_at_ns"]) / 1e6 for r in window], np.float64
    )
    seqs = sorted(r["seq"] for r in window)
    return {
        "faces": faces,
        "mode": mode,
        "workers": workers,
        "detector": args.detector,
        "input_fps": args.fps,
        "results": len(window),
        "fps": len(window) * 1e9 / (end_ns - start_ns),
        "latency_p50_ms": float(np.percentile(latency_ms, 50)) if window else float("nan"),
        "latency_p95_ms": float(np.percentile(latency_ms, 95)) if window else float("nan"),
        "seq_gaps": (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0,
        "faces_per_result": (
            sum(len(r["faces"]) for r in window) / len(window) if window else float("nan")
        ),
        "errors": sum(r["error"] is not None for r in window),
    }


class PipelineBench(BenchSettings):
    """The real services as subprocesses on loopback: sustained fps and capture-to-display
    latency."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.pipeline")

    seconds: float = Field(default=20.0, gt=0, description="Measured window per run.")
    warmup: float = Field(default=5.0, ge=0, description="Seconds after the first result.")
    fps: float = Field(default=30.0, gt=0, description="Capture's frame rate.")
    faces: list[int] = Field(default=[1, 3], description="Faces per frame.")
    modes: list[Literal["live", "lossless"]] = Field(
        default=["live", "lossless"], description="Capture modes."
    )
    workers: list[int] = Field(default=[1, 2], description="Worker counts.")
    detector: str = Field(
        default="blazeface_tracking", description="The worker's detector setting."
    )
    model: Path = Field(default=MODEL, description="The workers' model file.")


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(PipelineBench, argv)
    grid = itertools.product(args.faces, args.modes, args.workers)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="emojify-bench-") as scratch:
        for faces, mode, workers in grid:
            rows.append(measure(faces, mode, workers, args, Path(scratch)))
            row = rows[-1]
            print(
                f"{faces} face(s) {mode} {workers} worker(s): {row['fps']:.1f} fps, "
                f"p50 {row['latency_p50_ms']:.0f} ms",
                flush=True,
            )
    fewest = min(r["workers"] for r in rows)
    base = {(r["faces"], r["mode"]): r["fps"] for r in rows if r["workers"] == fewest}
    for row in rows:
        one = base.get((row["faces"], row["mode"]))
        row["fps_vs_fewest_workers"] = row["fps"] / one if one else float("nan")
    print()
    print_table(
        ["faces", "mode", "workers", "fps", "x fewest", "p50 ms", "p95 ms", "gaps", "faces/res"],
        [
            [
                r["faces"], r["mode"], r["workers"], r["fps"], r["fps_vs_fewest_workers"],
                r["latency_p50_ms"], r["latency_p95_ms"], r["seq_gaps"],
                r["faces_per_result"],
            ]
            for r in rows
        ],
    )  # fmt: skip
    write_result(
        args.out_file("pipeline"),
        "pipeline",
        {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "detector": args.detector,
            "model": str(args.model),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
