"""Several cameras on the same workers and one display grid; a display that reads slowly.

Both run the real pipeline from `scripts/run_pipeline.sh` (supervisord) on free loopback ports,
with real model files; the second camera is a capture process the test starts beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.soak import vm_rss_kib
from shared.image import decode_jpeg
from shared.recording import RECORDING_FILE, load_recording
from tests.integration.display_harness import free_port, http_get, read_jsonl
from tests.integration.pipeline_harness import (
    RECORDING,
    REPO,
    health,
    metrics,
    metrics_when_up,
    running_pipeline,
    wait_all_results_in,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

#: A worker loading TensorFlow on two busy cores.
START_S = 150


@pytest.mark.timeout(360)
def test_two_cameras_share_the_workers_and_the_display_shows_both(tmp_path: Path) -> None:
    total = len(load_recording(RECORDING).frames)
    frames_b = f"tcp://127.0.0.1:{free_port()}"
    preview_b = f"tcp://127.0.0.1:{free_port()}"
    with running_pipeline(
        tmp_path,
        workers=1,
        more_captures=[(frames_b, preview_b)],
        EMOJIFY_CAPTURE_PACE="source",
    ) as pipeline:
        # Camera B starts with the pipeline, so both wait for the worker and run side by side.
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMOJIFY_")}
        with (tmp_path / "capture-b.log").open("wb") as log:
            camera_b = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.capture",
                    f"--source={RECORDING}",
                    "--stream-id=cam-b",
                    "--mode=lossless",
                    "--pace=source",
                    f"--frames-endpoint={frames_b}",
                    f"--preview-endpoint={preview_b}",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            pipeline.wait_running("capture", "display", "worker-0", timeout_s=START_S)
            # While both run, the display shows them side by side.
            wait_for(
                lambda: metrics_when_up(pipeline.http_url).get("streams", 0) == 2,
                120,
                lambda: f"both streams on the display\n{pipeline.log()[-3000:]}",
            )
            # The grid goes out on the display's next loop turn.
            wait_for(
                lambda: (
                    decode_jpeg(http_get(pipeline.http_url + "snapshot.jpg")[1]).shape[:2]
                    == (480, 1280)
                ),
                10,
                "the two-stream grid on the page",
            )
            for stream in ("demo", "cam-b"):
                wait_for(
                    lambda stream=stream: f"stream {stream} complete" in pipeline.log(),
                    180,
                    lambda stream=stream: (
                        f"the display's end of stream {stream}\n{pipeline.log()[-3000:]}"
                    ),
                )
            wait_all_results_in(pipeline)
            results = read_jsonl(pipeline.jsonl_path)
            per_stream = Counter((r["stream_id"], r["seq"]) for r in results)
            for stream in ("demo", "cam-b"):
                seqs = sorted(seq for (s, seq) in per_stream if s == stream)
                assert seqs == list(range(total)), f"every frame of {stream} gets a result"
            assert max(per_stream.values()) == 1, "no frame gets two results"
            assert {r["worker_id"] for r in results} == {"worker-0"}
        finally:
            camera_b.kill()
            camera_b.wait(timeout=10)


def _noise_recording(folder: Path, frames: int, fps: float) -> int:
    """A recording of incompressible 640x480 frames; returns the size of one in bytes."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    sizes = []
    for index in range(frames):
        noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (folder / f"{index:03d}.jpg").write_bytes(data.tobytes())
        sizes.append(len(data))
    listing = [{"file": f"{index:03d}.jpg"} for index in range(frames)]
    recording = {"stream_id": "noise", "fps": fps, "width": 640, "height": 480}
    (folder / RECORDING_FILE).write_text(json.dumps({**recording, "frames": listing}))
    return int(np.mean(sizes))


@pytest.mark.timeout(360)
def test_a_display_that_reads_slowly_costs_capture_no_memory_and_loses_no_frame_silently(
    tmp_path: Path,
) -> None:
    fps = 30.0
    frame_bytes = _noise_recording(tmp_path / "noise", 16, fps)
    with running_pipeline(
        tmp_path,
        workers=1,
        EMOJIFY_CAPTURE_SOURCE=str(tmp_path / "noise"),
        EMOJIFY_CAPTURE_MODE="live",
        EMOJIFY_CAPTURE_PACE="source",
        EMOJIFY_CAPTURE_LOOP="true",
        EMOJIFY_DISPLAY_MODE="live",
        EMOJIFY_DISPLAY_SINKS="http",
    ) as pipeline:
        pipeline.wait_running("capture", "display", "worker-0", timeout_s=START_S)
        wait_for(
            lambda: metrics_when_up(pipeline.http_url).get("results_total", 0) > 30,
            120,
            "30 results",
        )
        pids = pipeline.child_pids()
        capture_pid, display_pid = pids["capture"], pids["display"]
        # Warmed up: the baseline is taken after 30 more results.
        warm = metrics(pipeline.http_url)["results_total"] + 30
        wait_for(lambda: metrics(pipeline.http_url)["results_total"] >= warm, 60, "warm-up")
        baseline_kib = vm_rss_kib(capture_pid)
        assert baseline_kib is not None

        # The display stops reading for 6 s at a time (SIGSTOP: no thread of it runs), three
        # times: far more than its queue and the capture's hold (30 fps x 6 s x ~1 MB).
        peak_kib = baseline_kib
        late_ms = []
        for _ in range(3):
            os.kill(display_pid, signal.SIGSTOP)
            try:
                stopped_until = time.monotonic() + 6.0
                while time.monotonic() < stopped_until:
                    peak_kib = max(peak_kib, vm_rss_kib(capture_pid) or 0)
                    time.sleep(0.25)  # deliberate: the display stays stopped (a slow consumer)
            finally:
                os.kill(display_pid, signal.SIGCONT)
            # Awake again: its latency once it has drawn 15 frames more.
            drawn = metrics(pipeline.http_url)["rendered_total"] + 15
            wait_for(
                lambda drawn=drawn: metrics(pipeline.http_url)["rendered_total"] >= drawn,
                30,
                "drawing again",
            )
            late_ms.append(metrics(pipeline.http_url)["latency_last_ms"])

        growth_mib = (peak_kib - baseline_kib) / 1024
        print(
            f"capture RSS {baseline_kib / 1024:.1f} MiB, +{growth_mib:.1f} MiB at most; "
            f"display latency after waking {late_ms} ms"
        )
        held_mib = 2 * 32 * frame_bytes / 2**20  # both preview queues full
        assert growth_mib < held_mib + 8, (
            f"capture grew {growth_mib:.1f} MiB while the display slept (queues hold "
            f"{held_mib:.1f} MiB; a 6 s backlog would be {6 * fps * frame_bytes / 2**20:.0f})"
        )
        # Once it draws again, the display draws frames of now, not the backlog.
        assert max(late_ms) < 1000, late_ms
        counts = metrics(pipeline.http_url)
        assert counts["preview_missed_total"] > 2 * fps, counts  # the frames it slept through
        assert health(pipeline.http_url)[0] == 200
        assert health(pipeline.capture_status_url)[0] == 200
        assert pipeline.process.poll() is None
