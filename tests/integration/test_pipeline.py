"""The whole pipeline under supervisord, as users run it: recording -> 2 workers -> display."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.image import iou_xywh
from shared.model_file import read_metadata
from shared.recording import load_recording
from tests.integration.display_harness import http_get, read_jsonl
from tests.integration.pipeline_harness import (
    MODEL,
    RECORDING,
    Pipeline,
    running_pipeline,
    wait_all_results_in,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PROGRAMS = ("capture", "display", "worker-0", "worker-1")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    with running_pipeline(tmp_path) as running:
        yield running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but is not yet reaped by its parent.
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


def _matched_faces(truth: list[Any], found: list[dict[str, Any]]) -> tuple[int, int]:
    """(ground-truth faces found, detections matching no ground-truth face), IoU >= 0.3."""
    hits = sum(
        any(iou_xywh(face.box_xywh, tuple(f["box_xywh"])) >= 0.3 for f in found) for face in truth
    )
    strays = sum(
        not any(iou_xywh(face.box_xywh, tuple(f["box_xywh"])) >= 0.3 for face in truth)
        for f in found
    )
    return hits, strays


@pytest.mark.timeout(300)
def test_lossless_recording_gets_one_result_per_frame_with_faces_in_place(
    pipeline: Pipeline,
) -> None:
    recording = load_recording(RECORDING)
    total = len(recording.frames)

    def all_results() -> bool:
        assert pipeline.process.poll() is None, pipeline.log()[-4000:]
        return pipeline.jsonl_path.exists() and len(read_jsonl(pipeline.jsonl_path)) >= total

    wait_for(all_results, 240, lambda: f"{total} results\n{pipeline.log()[-3000:]}")
    wait_for(lambda: "stream demo complete" in pipeline.log(), 30, "the display's end of stream")
    wait_all_results_in(pipeline)
    results = read_jsonl(pipeline.jsonl_path)

    seqs = Counter(r["seq"] for r in results)
    assert sorted(seqs) == list(range(total)), "every frame gets a result"
    assert max(seqs.values()) == 1, f"duplicates: {[s for s, n in seqs.items() if n > 1]}"
    assert {r["stream_id"] for r in results} == {recording.stream_id}
    assert {r["model_version"] for r in results} == {read_metadata(MODEL).version}
    assert {r["worker_id"] for r in results} <= {"worker-0", "worker-1"}
    assert all(r["error"] is None for r in results)

    by_seq = {r["seq"]: r for r in results}
    truth_faces = hits = strays = 0
    for seq, frame in enumerate(recording.frames):
        found, missed = _matched_faces(list(frame.faces), by_seq[seq]["faces"])
        truth_faces += len(frame.faces)
        hits += found
        strays += missed
    assert hits >= 0.9 * truth_faces, f"found {hits} of {truth_faces} faces"
    assert strays <= 0.05 * truth_faces, f"{strays} detections where no face is"
    assert all(len(f["probabilities"]) == 7 for r in results for f in r["faces"])

    status, page = http_get(pipeline.http_url)
    assert status == 200 and b"stream.mjpg" in page

    # A short recording can end before a worker's startsecs (3 s) have passed, so supervisord's
    # RUNNING line may still be on its way: wait for it rather than read it once.
    pipeline.wait_running(*PROGRAMS, timeout_s=30)
    log = pipeline.log()
    # Every service's lines name the service and its pid (supervisord merges them).
    assert re.search(r"\bcapture\[\d+\]", log) and re.search(r"\bdisplay\[\d+\]", log)


@pytest.mark.timeout(120)
def test_stopping_supervisord_leaves_no_process_behind(pipeline: Pipeline) -> None:
    pipeline.wait_running(*PROGRAMS, timeout_s=90)
    pids = pipeline.child_pids()
    assert set(pids) == set(PROGRAMS)
    pipeline.process.send_signal(signal.SIGTERM)
    assert pipeline.process.wait(timeout=30) == 0
    log = pipeline.log()
    for program in PROGRAMS:
        assert f"stopped: {program} (exit status 0)" in log, log[-3000:]
    assert not [name for name, pid in pids.items() if _alive(pid)]
