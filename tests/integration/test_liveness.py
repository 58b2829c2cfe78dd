"""Liveness under supervisord: a worker killed mid-run, every service restarted, workers gone.

Each test runs the real pipeline (capture, two workers, display) from `scripts/run_pipeline.sh`
on free loopback ports, and is killed with all its children afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.recording import load_recording
from tests.integration.pipeline_harness import (
    RECORDING,
    Pipeline,
    health,
    metrics,
    running_pipeline,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PROGRAMS = ("capture", "display", "worker-0", "worker-1")
#: Two workers loading TensorFlow on two busy cores.
START_S = 150


def _results_after(pipeline: Pipeline, count: int, more: int) -> Callable[[], bool]:
    def arrived() -> bool:
        assert pipeline.process.poll() is None, pipeline.log()[-4000:]
        return len(pipeline.results()) >= count + more

    return arrived


@pytest.mark.timeout(420)
def test_a_worker_killed_mid_recording_loses_no_frame_and_duplicates_none(
    tmp_path: Path,
) -> None:
    total = len(load_recording(RECORDING).frames)
    # At the recording's own 15 fps the run takes ~9 s: long enough to kill a worker midway.
    with running_pipeline(tmp_path, EMOJIFY_CAPTURE_PACE="source") as pipeline:
        pipeline.wait_running(*PROGRAMS, timeout_s=START_S)
        wait_for(_results_after(pipeline, 0, 30), 120, "30 results")
        victim = pipeline.child_pids()["worker-0"]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(pipeline.results())
        assert killed_at < total, "the recording ended before the kill: make it slower"

        wait_for(lambda: pipeline.spawn_count("worker-0") >= 2, 60, "worker-0 restarted")
        wait_for(_results_after(pipeline, 0, total), 180, f"{total} results")
        wait_for(lambda: "stream demo complete" in pipeline.log(), 60, "the display's end")
        # Deliberate: a worker was killed, so its sent count is gone; a duplicate from the frame
        # it held would arrive right behind the last result.
        time.sleep(1.0)

        seqs = Counter(result["seq"] for result in pipeline.results())
        assert sorted(seqs) == list(range(total)), f"missing {set(range(total)) - set(seqs)}"
        assert max(seqs.values()) == 1, f"duplicates: {[s for s, n in seqs.items() if n > 1]}"
        capture = metrics(pipeline.capture_status_url)
        assert capture["worker_lost_total"] >= 1, capture
        # Every frame the dead worker held went to the other one, each said so once.
        resent = pipeline.log().count(" re-sent to worker ")
        assert capture["redispatched_total"] == resent and capture["in_flight"] == 0, capture
        assert "worker b'worker-0' lost" in pipeline.log()
        display = metrics(pipeline.http_url)
        assert display["missing_total"] == 0 and display["matched_total"] == total, display


@pytest.mark.timeout(600)
def test_each_service_restarted_in_turn_and_workers_stopped_the_pipeline_recovers(
    tmp_path: Path,
) -> None:
    with running_pipeline(
        tmp_path,
        EMOJIFY_CAPTURE_MODE="live",
        EMOJIFY_CAPTURE_PACE="source",
        EMOJIFY_CAPTURE_LOOP="true",
        EMOJIFY_DISPLAY_MODE="live",
    ) as pipeline:
        pipeline.wait_running(*PROGRAMS, timeout_s=START_S)
        wait_for(_results_after(pipeline, 0, 10), 120, "the first results")

        # Every service serves /metrics and /healthz (a worker once TensorFlow has loaded,
        # which on a busy machine can be after the other worker's first results).
        for url in (
            pipeline.capture_status_url,
            pipeline.http_url,
            *pipeline.worker_status_urls.values(),
        ):
            wait_for(lambda url=url: _healthy(url), 60, f"{url}healthz answering 200")
            wait_for(lambda url=url: metrics(url)["fps_in"] > 0, 60, f"{url}metrics fps_in > 0")

        for program in ("capture", "display", "worker:*"):
            before = len(pipeline.results())
            out = pipeline.ctl("restart", program, timeout_s=120)
            assert "started" in out, out
            wait_for(
                _results_after(pipeline, before, 15),
                150,
                lambda program=program: (
                    f"results after restarting {program}\n{pipeline.log()[-3000:]}"
                ),
            )
            # Two workers may answer neighbours out of order, and a frame of the stream before a
            # capture restart may be answered after it (seqs start again at 0), but the newest
            # seq is ahead of the lowest: the stream goes on.
            fresh = [result["seq"] for result in pipeline.results()[before:]][-10:]
            assert fresh[-1] > min(fresh), f"seqs not increasing after {program}: {fresh}"

        # All workers stopped: frames still come, the display says inference is offline.
        assert health(pipeline.http_url)[1]["inference"] == "ok"
        out = pipeline.ctl("stop", "worker:*")
        assert "stopped" in out, out
        wait_for(
            lambda: health(pipeline.http_url)[1]["inference"] == "offline", 15, "offline banner"
        )
        assert metrics(pipeline.http_url)["inference_offline"] == 1
        capture = metrics(pipeline.capture_status_url)
        assert capture["worker_lost_total"] >= 2, capture

        before = len(pipeline.results())
        out = pipeline.ctl("start", "worker:*", timeout_s=120)
        assert "started" in out, out
        wait_for(_results_after(pipeline, before, 10), 150, "results after the workers start")
        wait_for(lambda: health(pipeline.http_url)[1]["inference"] == "ok", 15, "banner gone")
        assert metrics(pipeline.http_url)["inference_offline"] == 0


def _healthy(url: str) -> bool:
    try:
        return health(url)[0] == 200
    except OSError:  # not listening yet
        return False
