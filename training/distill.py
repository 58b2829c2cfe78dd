"""Distil a served model (e.g. the ensemble) into one network that tolerates framing and cameras.

``python -m training.distill --teacher models/emotion_model.keras --run-dir runs/distill``

Every epoch draws new framing and camera jitter (``training.augment``) on the training faces,
asks the teacher for its probabilities on exactly those jittered faces, and trains the student
on a mix of the teacher's probabilities and the true labels. The student holds out the same
slice of train/ as ``training.train`` (for the prior adjustment), validates on test/ and keeps
a resumable checkpoint every epoch; ``training.train --export-only --run-dir RUN`` writes the
served model file from its best checkpoint, as for any run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.augment import Faces, Jitter, jitter_faces
from training.data import Examples, class_weights, load_split
from training.train import (
    DEFAULT_DATA,
    INPUT_HW,
    TimeKeeper,
    TrainConfig,
    compile_model,
    limited,
    one_hot,
    split_train,
)

log = logging.getLogger("training.distill")


@dataclass(frozen=True)
class DistillConfig:
    """The student's run; ``train`` is what ``training.train --export-only`` reads back."""

    train: TrainConfig
    teacher: str
    #: Weight of the teacher's probabilities in the target (the rest: the one-hot label).
    teacher_weight: float


def fit_student(
    config: DistillConfig,
    run_dir: Path,
    train: Examples,
    val: Examples,
    teacher: Any,
    *,
    jittered: Callable[[int], Faces] | None = None,
    after_epoch: Callable[[Any, bool], None] | None = None,
) -> None:
    """Train (or resume) the student; ``last.keras`` every epoch, ``best.keras`` by val accuracy.

    ``jittered(epoch)`` gives that epoch's jittered training faces (default: ``Jitter()`` drawn
    here, seeded by the run's seed and the epoch); ``after_epoch(student, improved)`` runs after
    each epoch's checkpoints are written.
    """
    import keras

    from training.models import build_model

    train_config = config.train
    clock = TimeKeeper(run_dir / "time.json")
    history_path = run_dir / "history.csv"
    done = _history(history_path)
    last_path, best_path = run_dir / "last.keras", run_dir / "best.keras"
    steps = int(np.ceil(len(train) / train_config.batch_size))
    if done and last_path.is_file():
        student = keras.saving.load_model(last_path, custom_objects=_custom_objects(), compile=True)
        log.info("resuming %s after epoch %d", run_dir, len(done))
    else:
        done = []
        student = build_model(train_config.arch, INPUT_HW)
        compile_model(student, train_config, steps)
    best = max((row["val_accuracy"] for row in done), default=-1.0)
    weights = class_weights(train.class_counts(), train_config.class_weight_power)
    sample_weight = np.asarray([weights[int(label)] for label in train.labels], np.float32)
    labels = one_hot(train.labels)
    val_targets = one_hot(val.labels)
    for epoch in range(len(done), train_config.epochs):
        started = time.monotonic()
        faces = (
            jittered(epoch)
            if jittered is not None
            else jitter_faces(train.images, epoch_rng(train_config.seed, epoch), Jitter())
        )
        soft = np.asarray(teacher.predict(faces, batch_size=2048, verbose=0), np.float32)
        predicted_s = time.monotonic() - started
        targets = config.teacher_weight * soft + (1 - config.teacher_weight) * labels
        order = np.random.default_rng([train_config.seed, epoch]).permutation(len(faces))
        result = student.fit(
            faces[order],
            targets[order],
            sample_weight=sample_weight[order],
            batch_size=train_config.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            validation_data=(val.images, val_targets),
            verbose=0,
        )
        row = {key: float(values[-1]) for key, values in result.history.items()}
        row["epoch"] = epoch
        row["seconds"] = round(time.monotonic() - started, 1)
        row["jitter_teacher_seconds"] = round(predicted_s, 1)
        student.save(last_path)
        if row["val_accuracy"] > best:
            best = row["val_accuracy"]
            student.save(best_path)
        _append(history_path, row)
        clock.save()
        if after_epoch is not None:
            after_epoch(student, row["val_accuracy"] >= best)
        log.info(
            "epoch %d/%d: loss %.4f, accuracy %.4f, val_accuracy %.4f (best %.4f), %.0f s",
            epoch + 1,
            train_config.epochs,
            row["loss"],
            row["accuracy"],
            row["val_accuracy"],
            best,
            row["seconds"],
        )


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's jitter: the same faces whether resumed or not."""
    return np.random.default_rng([seed, epoch, 1])


def _custom_objects() -> dict[str, Any]:
    from shared.keras_layers import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


def _history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _append(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def prepare(run_dir: Path, config: DistillConfig, resume: bool) -> DistillConfig:
    """Write the run's config (``config.json`` as ``training.train`` reads it), or read it back."""
    config_path = run_dir / "config.json"
    distill_path = run_dir / "distill.json"
    if resume:
        if not config_path.is_file():
            raise SystemExit(f"cannot resume: {config_path} not found")
        extra = json.loads(distill_path.read_text())
        train = TrainConfig(**json.loads(config_path.read_text()))
        return DistillConfig(train, extra["teacher"], extra["teacher_weight"])
    if config_path.exists():
        raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(asdict(config.train), indent=2) + "\n")
    distill_path.write_text(
        json.dumps({"teacher": config.teacher, "teacher_weight": config.teacher_weight}) + "\n"
    )
    return config


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.distill", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--teacher", type=Path, default=Path("models/emotion_model.keras"))
    parser.add_argument("--arch", default="vgg-student")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--teacher-weight", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--limit", type=int, default=0, help="examples per split (smoke tests)")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    train_config = TrainConfig(
        data=str(args.data),
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=5e-4,
        label_smoothing=0.0,
        class_weight_power=0.5,
        holdout=0.1,
        patience=args.epochs,
        seed=args.seed,
        limit=args.limit,
    )
    config = prepare(
        args.run_dir,
        DistillConfig(train_config, str(args.teacher), args.teacher_weight),
        args.resume,
    )
    import keras

    from shared.keras_layers import load_model

    keras.utils.set_random_seed(config.train.seed)
    data = Path(config.train.data)
    train, _ = split_train(load_split(data, "train"), config.train)
    val = limited(load_split(data, "test"), config.train.limit, config.train.seed)
    teacher = load_model(config.teacher)
    log.info(
        "student %s from teacher %s: train %d, val %d",
        config.train.arch,
        config.teacher,
        len(train),
        len(val),
    )
    fit_student(config, args.run_dir, train, val, teacher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
