"""The training job end to end on tiny data made here: model file, report, resume, evaluate."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.labels import EMOTIONS
from shared.model_file import read_metadata, write_model_files
from stages.classifier import load_classifier
from tests.fer_tiny import write_fer_csv, write_fer_folder, write_ferplus_votes
from tests.waiting import wait_for
from training.data import load_split

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _history_epochs(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open(newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _train_args(data: Path, run_dir: Path, model: Path, epochs: int) -> list[str]:
    return [
        "--data",
        str(data),
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--holdout",
        "0.25",
        "--run-dir",
        str(run_dir),
        "--output",
        str(model),
    ]


def test_train_writes_model_metadata_and_report(tmp_path: Path) -> None:
    data = write_fer_csv(tmp_path / "fer2013.csv")
    model = tmp_path / "models" / "emotion_model.keras"
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "training.train", *_train_args(data, run_dir, model, 1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on CPU" in result.stderr or "training on GPU" in result.stderr

    metadata = read_metadata(model)
    assert metadata.labels == EMOTIONS
    assert metadata.input_hw == (48, 48)
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["metrics"] == metadata.metrics
    assert np.array(report["confusion_matrix"]).sum() == len(EMOTIONS) * 4
    for name in ("confusion_matrix.png", "learning_curve_accuracy.png", "per_class.md"):
        assert (run_dir / name).stat().st_size > 0

    from shared.keras_layers import load_model

    served = load_model(model)
    faces = np.full((2, 48, 48, 1), 128, dtype=np.uint8)
    probabilities = np.asarray(served(faces, training=False))
    assert probabilities.shape == (2, len(EMOTIONS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)

    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--model",
            str(model),
            "--data",
            str(write_fer_folder(tmp_path / "fer")),
            "--split",
            "test",
            "--report-dir",
            str(tmp_path / "eval"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluation = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # The folder and the CSV hold the same images, so the numbers agree.
    assert evaluation["metrics"] == metadata.metrics


def test_resume_continues_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import train

    data = write_fer_folder(tmp_path / "fer")
    model = tmp_path / "emotion_model.keras"
    run_dir = tmp_path / "run"
    original_save = train.TimeKeeper.save

    def interrupt_after_first_epoch(self: train.TimeKeeper) -> None:
        original_save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.TimeKeeper, "save", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.main(_train_args(data, run_dir, model, 3))
    assert _history_epochs(run_dir) == [0]
    assert not model.exists()

    monkeypatch.setattr(train.TimeKeeper, "save", original_save)
    assert train.main(["--resume", "--run-dir", str(run_dir), "--output", str(model)]) == 0
    assert _history_epochs(run_dir) == [0, 1, 2]
    assert read_metadata(model).epochs == 3


def test_new_run_refuses_an_existing_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "already holds a run; pass --resume" in result.stderr


def test_export_averages_an_ensemble_of_runs(tmp_path: Path) -> None:
    from shared.keras_layers import load_model
    from stages.litert import LiteRtClassifier
    from training import train

    data = write_fer_folder(tmp_path / "fer")
    model = tmp_path / "emotion_model.keras"
    for seed, arch in (("1", "vgg"), ("2", "vgg-small")):
        args = [*_train_args(data, tmp_path / f"run{seed}", model, 1), "--seed", seed, "--replace"]
        assert train.main([*args, "--arch", arch]) == 0
    single = read_metadata(model)
    assert single.architecture == "vgg-small"

    ensemble_args = ["--export-only", "--run-dir", str(tmp_path / "run1"), "--output", str(model)]
    ensemble_args.append("--replace")
    assert train.main([*ensemble_args, "--ensemble", str(tmp_path / "run2")]) == 0
    metadata = read_metadata(model)
    assert metadata.architecture == "vgg+vgg-small"
    assert metadata.epochs == 2
    assert "average of 2 networks" in metadata.preprocessing
    served = load_model(model)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)
    probabilities = np.asarray(served(faces, training=False))
    assert probabilities.shape == (3, len(EMOTIONS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    # A CPU worker runs the .tflite written beside it (random erasing is an identity at
    # inference; int8 weights, so close to the float model rather than equal).
    assert metadata.tflite_weights == "int8"
    lite = LiteRtClassifier.load(model)
    np.testing.assert_allclose(lite.classify(faces), probabilities, atol=0.02)


def test_campaign_resumes_stops_within_budget_and_carries_its_state(
    tiny_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from training import campaign, train

    data = write_fer_folder(tmp_path / "fer", per_class=10)  # a 10% holdout keeps one a class
    run_dir, carry = tmp_path / "run", tmp_path / "carry"
    args = ["--data", str(data), "--teacher", str(tiny_model_path), "--init", ""]
    args += ["--batch-size", "8", "--epochs", "3", "--carry", str(carry)]
    # A budget of no time still trains one epoch (nothing says how long one takes), then stops.
    assert campaign.main([*args, "--run-dir", str(run_dir), "--budget-minutes", "0"]) == 0
    assert _history_epochs(run_dir) == [0]
    assert (run_dir / "teacher.npy").is_file()
    assert {p.name for p in carry.iterdir()} >= {
        "config.json",
        "last.keras",
        "history.csv",
        "teacher.npy",
    }
    # Now an epoch's time is known, and it does not fit in no time.
    assert campaign.main([*args, "--run-dir", str(run_dir), "--budget-minutes", "0"]) == 0
    assert _history_epochs(run_dir) == [0]
    # The run folder is gone (a fresh machine): the carried state goes on, not a new run.
    shutil.rmtree(run_dir)
    assert campaign.main([*args, "--run-dir", str(run_dir)]) == 0
    assert _history_epochs(run_dir) == [0, 1, 2]
    assert _history_epochs(carry) == [0, 1, 2]
    # A finished run goes on only by a warm restart: a new schedule from the last weights,
    # its optimizer steps counted afresh (the first schedule ended at a learning rate of 0).
    steps_per_epoch = _optimizer_steps(run_dir) // 3
    extend = [*args, "--run-dir", str(run_dir), "--extend-to", "4", "--restart-lr", "0.01"]
    assert campaign.main(extend) == 0
    assert _history_epochs(run_dir) == [0, 1, 2, 3]
    assert _optimizer_steps(run_dir) == steps_per_epoch
    restarts = json.loads((carry / "campaign.json").read_text())["restarts"]
    assert restarts == [
        {
            "epoch": 3,
            "epochs": 1,
            "learning_rate": 0.01,
            "ferplus_weight": 0.0,
            "arch": "",
            "teacher_weight": None,
            "start": "",
            "sam_rho": None,
        }
    ]
    assert campaign.main(extend) == 0  # the same options again: nothing more to do
    assert _history_epochs(run_dir) == [0, 1, 2, 3]
    # A restart may give part of the label's share to the FER+ raters' votes, move the
    # weights into a wider network (training.widen) that goes on from them, and change the
    # teacher's share of the target.
    write_ferplus_votes(data)
    ferplus = [*args, "--run-dir", str(run_dir), "--extend-to", "5", "--ferplus-weight", "0.5"]
    ferplus += ["--restart-arch", "vgg-student-wide", "--restart-teacher-weight", "0.3"]
    with caplog.at_level(logging.INFO, logger="training.campaign"):
        assert campaign.main(ferplus) == 0
    assert "the weights go on in vgg-student-wide" in caplog.text
    assert "at 0.3 now" in caplog.text
    assert _history_epochs(run_dir) == [0, 1, 2, 3, 4]
    restarts = json.loads((carry / "campaign.json").read_text())["restarts"]
    assert restarts[-1] == {
        "epoch": 4,
        "epochs": 1,
        "learning_rate": 0.005,
        "ferplus_weight": 0.5,
        "arch": "vgg-student-wide",
        "teacher_weight": 0.3,
        "start": "",
        "sam_rho": None,
    }
    import keras

    from shared.keras_layers import CUSTOM_OBJECTS

    last = keras.saving.load_model(carry / "last.keras", custom_objects=CUSTOM_OBJECTS)
    assert last.name == "vgg_student_wide"
    # training.train exports the student like any run: model, .tflite and metadata.
    model = tmp_path / "student.keras"
    export = ["--export-only", "--run-dir", str(run_dir), "--output", str(model)]
    assert train.main(export) == 0
    # The metadata names the exported checkpoint's own network: the wide one if the best epoch
    # came after the switch.
    with (run_dir / "history.csv").open(newline="") as handle:
        accuracies = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    best_epoch = accuracies.index(max(accuracies))
    expected = "vgg-student-wide" if best_epoch == 4 else "vgg-student"
    assert read_metadata(model).architecture == expected
    assert model.with_suffix(".tflite").is_file()
    # The served model sees each face as given, so a face and its mirror image need not get
    # the same answer from it; the worker's classifier averages both views of a face it sees
    # once (stages.views), so there they do.
    assert read_metadata(model).mirror == "worker"
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    # (a tiny run's student is sure of itself: its views differ in the fifth decimal)
    assert not np.allclose(_answers(model, faces), _answers(model, mirrored), rtol=0, atol=1e-7)
    classifier = load_classifier(model, "tensorflow")
    both = classifier.classify(faces)
    np.testing.assert_allclose(both, classifier.classify(mirrored), atol=1e-5)
    one, other = (
        classifier.classify(faces, ["face"] * 4),
        classifier.classify(faces, ["mirror"] * 4),
    )
    np.testing.assert_allclose(both, (one + other) / 2, atol=1e-5)
    # A restart may go back to a served model's network (here the one just exported) instead
    # of going on from the last epoch; a missing file is refused before anything changes.
    back = [*args, "--run-dir", str(run_dir), "--extend-to", "6"]
    with pytest.raises(SystemExit, match="no such model file"):
        campaign.main([*back, "--restart-from", str(tmp_path / "missing.keras")])
    assert _history_epochs(run_dir) == [0, 1, 2, 3, 4]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.campaign"):
        assert campaign.main([*back, "--restart-from", str(model)]) == 0
    assert f"the weights come from {model}" in caplog.text
    assert _history_epochs(run_dir) == [0, 1, 2, 3, 4, 5]
    restarts = json.loads((carry / "campaign.json").read_text())["restarts"]
    assert restarts[-1]["start"] == str(model)
    assert restarts[-1]["teacher_weight"] is None  # the 0.3 of the restart before still holds
    # A restart may take sharpness-aware steps (training.sharpness); the network it saves goes
    # on as any other, with its optimizer's state.
    caplog.clear()
    sam = [*args, "--run-dir", str(run_dir), "--extend-to", "7", "--restart-sam-rho", "0.05"]
    with caplog.at_level(logging.INFO, logger="training.campaign"):
        assert campaign.main(sam) == 0
    assert "sharpness-aware steps of radius 0.05 from epoch 7" in caplog.text
    assert _history_epochs(run_dir) == [0, 1, 2, 3, 4, 5, 6]
    # A new schedule whose steps went through the network's own optimizer.
    assert _optimizer_steps(run_dir) == steps_per_epoch
    restarts = json.loads((carry / "campaign.json").read_text())["restarts"]
    assert restarts[-1]["sam_rho"] == 0.05
    # A checkpoint is evaluated as the worker serves it (both views of each face), also on the
    # slice of train/ that every run holds out.
    from training import evaluate
    from training.train import read_config, split_train

    report = tmp_path / "holdout"
    checkpoint = ["--model", str(run_dir / "last.keras"), "--data", str(data)]
    assert evaluate.main([*checkpoint, "--split", "holdout", "--report-dir", str(report)]) == 0
    holdout = evaluate.faces_of(data, "holdout")
    assert holdout.names == split_train(load_split(data, "train"), read_config(run_dir))[1].names
    network = keras.saving.load_model(
        run_dir / "last.keras", custom_objects=CUSTOM_OBJECTS, compile=False
    )
    both = evaluate.predict_probabilities(network, holdout.images, mirror=True)
    measured = json.loads((report / "metrics.json").read_text())["metrics"]
    assert measured["accuracy"] == pytest.approx(np.mean(both.argmax(axis=1) == holdout.labels))
    # A run folder that lost its last checkpoint is refused, not trained from scratch again
    # under its history; a restart that takes its weights from a served model needs none.
    (run_dir / "last.keras").unlink()
    with pytest.raises(SystemExit, match=r"7 epochs in history\.csv but no last\.keras"):
        campaign.main([*args, "--run-dir", str(run_dir)])
    served = [*args, "--run-dir", str(run_dir), "--extend-to", "8", "--restart-from", str(model)]
    assert campaign.main(served) == 0
    assert _history_epochs(run_dir) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_a_signal_stops_the_campaign_with_its_whole_epochs_kept_and_carried(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    from training import campaign

    data = write_fer_folder(tmp_path / "fer", per_class=10)
    run_dir, carry, log_path = tmp_path / "run", tmp_path / "carry", tmp_path / "campaign.log"
    args = ["--data", str(data), "--teacher", str(tiny_model_path), "--init", ""]
    # Epochs of about a second: enough of them that the signal, sent once two are on disk,
    # lands mid-run even when this process is held up for seconds (it once came only after
    # all six of an earlier version had finished).
    epochs = 20
    args += ["--batch-size", "8", "--epochs", str(epochs), "--carry", str(carry)]
    args += ["--run-dir", str(run_dir)]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "training.campaign", *args],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        history = run_dir / "history.csv"
        wait_for(lambda: history.is_file() and len(_history_epochs(run_dir)) >= 2, 240, "2 epochs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert "stopped by SIGTERM" in log and "Traceback" not in log, log
    kept = _history_epochs(run_dir)
    assert kept == list(range(len(kept))) and 2 <= len(kept) < epochs, kept
    assert f"epoch {len(kept)} of {epochs}" in log, "the stop says where the run is"
    # What is on disk is whole epochs: the checkpoint has taken as many optimizer steps as
    # the history has epochs of them, and the carried state is the run's.
    steps = _optimizer_steps(run_dir)
    assert steps % len(kept) == 0, (steps, kept)
    assert _history_epochs(carry) == kept
    # It goes on from there, to the end.
    assert campaign.main(args) == 0
    assert _history_epochs(run_dir) == list(range(epochs))
    assert _optimizer_steps(run_dir) == epochs * steps // len(kept)


def _optimizer_steps(run_dir: Path) -> int:
    import keras

    from shared.keras_layers import CUSTOM_OBJECTS

    model = keras.saving.load_model(run_dir / "last.keras", custom_objects=CUSTOM_OBJECTS)
    return int(model.optimizer.iterations)


def _answers(model: Path, faces: np.ndarray) -> list[float]:
    from shared.keras_layers import load_model

    return [float(p) for p in np.asarray(load_model(model)(faces, training=False)).ravel()]


def test_training_never_replaces_a_better_served_model_by_accident(tmp_path: Path) -> None:
    from tests.conftest import TINY_METADATA, build_tiny_model
    from training import train

    data = write_fer_folder(tmp_path / "fer")
    served = tmp_path / "models" / "emotion_model.keras"
    # The served model claims an accuracy no one-epoch run on tiny data reaches.
    metadata = {**TINY_METADATA, "metrics": {"accuracy": 1.0}}
    write_model_files(served, build_tiny_model().save, metadata)
    before = read_metadata(served).content_sha256

    assert train.main(_train_args(data, tmp_path / "run", served, 1)) == 0
    assert read_metadata(served).content_sha256 == before
    candidate = train.candidate_path(served)
    assert candidate.name == "emotion_model.candidate.keras"
    assert read_metadata(candidate).architecture == "vgg"
    # A --limit run goes aside whatever it scores; --replace is how a person means it.
    assert train.destination(served, 2.0, limited_run=True, replace=False) == candidate
    assert train.destination(served, 2.0, limited_run=False, replace=False) == served
    export = ["--export-only", "--run-dir", str(tmp_path / "run"), "--output", str(served)]
    assert train.main([*export, "--replace"]) == 0
    assert read_metadata(served).architecture == "vgg"
