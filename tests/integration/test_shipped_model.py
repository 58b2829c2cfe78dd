"""The model in models/: the file contract, the size budget, and its figures re-measured.

Runs ``python -m training.evaluate`` on FER2013 PublicTest beside the checkout
(``../shared/datasets/fer2013``) and checks that the metadata states what the file does, and
that its ``.tflite`` form (int8 weights, what CPU workers run) loses at most half a point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.labels import EMOTIONS
from shared.model_file import read_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion_model.keras"
FER2013 = ROOT.parent / "shared" / "datasets" / "fer2013"
MAX_BYTES = 20 * 1000 * 1000


def test_the_shipped_model_keeps_the_contract_and_the_budget() -> None:
    metadata = read_metadata(MODEL)  # also checks the content hash
    assert metadata.labels == EMOTIONS
    assert tuple(metadata.input_hw) == (48, 48)
    assert metadata.validation_split == "PublicTest"
    assert MODEL.stat().st_size <= MAX_BYTES
    # The CPU workers' form of the same model, named and hashed in the metadata.
    assert metadata.tflite_weights == "int8"
    assert MODEL.with_suffix(".tflite").stat().st_size <= MAX_BYTES
    # One view a pass: the worker chooses each face's views (stages.views).
    assert metadata.mirror == "worker"


def evaluate(model: Path, report_dir: Path) -> dict[str, float]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--model",
            str(model),
            "--data",
            str(FER2013),
            "--split",
            "test",
            "--report-dir",
            str(report_dir),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    measured: dict[str, float] = json.loads((report_dir / "metrics.json").read_text())["metrics"]
    assert measured["examples"] == 3589
    return measured


@pytest.mark.skipif(not (FER2013 / "test").is_dir(), reason=f"{FER2013}/test not present")
def test_the_shipped_model_measures_what_its_metadata_says(tmp_path: Path) -> None:
    metadata = read_metadata(MODEL)
    measured = evaluate(MODEL, tmp_path)
    for key in ("accuracy", "recall_disgust", "macro_f1"):
        assert measured[key] == pytest.approx(metadata.metrics[key], abs=1e-3), key
    assert measured["accuracy"] >= 0.68
    assert measured["recall_disgust"] >= 0.5


@pytest.mark.skipif(not (FER2013 / "test").is_dir(), reason=f"{FER2013}/test not present")
def test_the_cpu_workers_tflite_keeps_the_models_accuracy(tmp_path: Path) -> None:
    metadata = read_metadata(MODEL)
    measured = evaluate(MODEL.with_suffix(".tflite"), tmp_path)
    assert measured["accuracy"] >= metadata.metrics["accuracy"] - 0.005
    assert measured["accuracy"] >= 0.68
    # 56 disgust faces: one face is 0.018 of recall.
    assert measured["recall_disgust"] >= metadata.metrics["recall_disgust"] - 0.02
