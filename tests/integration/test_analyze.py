"""``python -m commands.analyze`` as users run it: a video, a folder of photos, bad paths."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.labels import EMOTIONS
from shared.recording import load_recording
from tests.integration.pipeline_harness import RECORDING, REPO, running_pipeline
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commands.analyze", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _video(path: Path, frames: int) -> Path:
    recording = load_recording(RECORDING)
    first = cv2.imread(str(RECORDING / recording.frames[0].file))
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 15.0, (width, height))
    for frame in recording.frames[:frames]:
        writer.write(cv2.imread(str(RECORDING / frame.file)))
    writer.release()
    return path


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(300)
def test_a_video_gives_results_an_annotated_video_and_a_timeline(tmp_path: Path) -> None:
    video = _video(tmp_path / "interview.mp4", 30)
    out = tmp_path / "out"
    done = _analyze(str(video), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "analyzed" in done.stdout and "30 frames" in done.stdout, done.stdout

    records = _read_jsonl(out / "results.jsonl")
    assert [r["seq"] for r in records] == list(range(30))
    assert {r["source"] for r in records} == {"interview.mp4"}
    assert records[15]["time_s"] == pytest.approx(1.0, abs=1e-3)
    faces = [face for r in records for face in r["faces"]]  # type: ignore[attr-defined]
    assert len(faces) >= 30, "the demo recording shows a face in every frame"
    assert all(len(f["probabilities"]) == 7 and f["track_id"] is not None for f in faces)

    annotated = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    annotated.release()

    with (out / "timeline.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "frame", "track_id", *EMOTIONS, "label"]
    assert len(rows) - 1 == len(faces)
    assert all(abs(sum(float(v) for v in row[3:10]) - 1.0) < 0.02 for row in rows[1:])
    chart = cv2.imread(str(out / "timeline.png"))
    assert chart is not None and chart.shape[1] == 1200 and chart.std() > 10

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 30 and summary["faces"] == len(faces)
    assert sum(summary["emotions"].values()) == len(faces)


@pytest.mark.timeout(300)
def test_a_folder_of_photos_with_a_broken_one_is_analysed_and_the_broken_one_named(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    recording = load_recording(RECORDING)
    for index in range(3):
        image = cv2.imread(str(RECORDING / recording.frames[index * 20].file))
        cv2.imwrite(str(folder / f"photo{index}.png"), image)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "notes.txt").write_text("not an image, not counted")
    out = tmp_path / "out"
    done = _analyze(str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = _read_jsonl(out / "results.jsonl")
    assert [r["source"] for r in records] == [
        "broken.jpg",
        "photo0.png",
        "photo1.png",
        "photo2.png",
    ]
    assert records[0]["error"] and records[0]["faces"] == []
    assert all(r["error"] is None and r["faces"] for r in records[1:])
    assert "broken.jpg" in done.stderr
    assert sorted(p.name for p in (out / "annotated").iterdir()) == [
        "photo0.jpg",
        "photo1.jpg",
        "photo2.jpg",
    ]
    assert "unreadable images: 1" in done.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.mp4", "no such file or folder"), ("notes.txt", "not an image or a video")],
)
def test_a_path_that_is_no_image_or_video_is_refused_clearly(
    tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    done = _analyze(str(tmp_path / name), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_a_video_that_is_not_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(np.random.default_rng(0).bytes(2048))
    done = _analyze(str(fake))
    assert done.returncode == 2, done.stderr
    assert "cannot open it as a video" in done.stderr or "no frame" in done.stderr, done.stderr


@pytest.mark.timeout(300)
def test_analyze_labels_a_recorded_folder_as_the_live_pipeline_does(tmp_path: Path) -> None:
    """Same code, same framing: the recording's frames through the pipeline (tracker set to pass
    probabilities through, both views of every face at every frame) and through
    commands.analyze (a folder of images: no tracker to average one view a frame, so both views
    of every face) give the same faces and labels."""
    total = len(load_recording(RECORDING).frames)
    with running_pipeline(
        tmp_path,
        workers=1,
        EMOJIFY_WORKER_SMOOTHING="0",
        EMOJIFY_WORKER_LABEL_HOLD_FRAMES="1",
        EMOJIFY_WORKER_MIRROR="always",
        EMOJIFY_WORKER_CLASSIFY_EVERY="1",
    ) as pipeline:
        wait_for(lambda: len(pipeline.results()) >= total, 240, f"{total} live results")
        live = {r["seq"]: r for r in pipeline.results()}
    out = tmp_path / "analyzed"
    done = _analyze(str(RECORDING / "frames"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    offline = _read_jsonl(out / "results.jsonl")
    assert len(offline) == total
    faces = 0
    for record in offline:
        ours, theirs = record["faces"], live[record["seq"]]["faces"]
        assert [f["box_xywh"] for f in ours] == [f["box_xywh"] for f in theirs], record["seq"]
        assert [f["label"] for f in ours] == [f["label"] for f in theirs], record["seq"]
        for mine, other in zip(ours, theirs, strict=True):
            assert mine["probabilities"] == pytest.approx(other["probabilities"], abs=1e-4)
        faces += len(ours)
    assert faces >= total, "the demo recording shows a face in every frame"
