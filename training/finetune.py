"""Fine-tune the served model's networks to tolerate framing and cameras (``training.finetune``).

``python -m training.finetune --model models/emotion_model.keras --run-dir runs/finetune``

Each network of the served model (each member of an ensemble) goes on training from its shipped
weights at a low learning rate. Every epoch redraws the training faces: half as FER2013 framed
them, half through ``training.augment``'s framing and camera jitter (mild by default: the
framing left after ``services.inference.framing``, plus webcam effects). The target mixes the
label with the served model's own probabilities on the face as FER2013 framed it, so a
re-framed face is taught what the model says about the face it learned.

Every member trains in a run folder of its own (``member-N/``, laid out as ``training.train``
writes one: ``config.json``, ``history.csv``, ``last.keras``, ``best.keras``), resumable after
any epoch. ``best.keras`` is chosen by the mean of two PublicTest accuracies: at FER2013's own
framing and on one fixed jittered copy. The last step hands the members to ``training.train``'s
export, which re-tunes the prior adjustment on the same holdout and writes the served pair
(``.keras``, ``.tflite``, metadata) to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.augment import Faces, Jitter, jitter_faces
from training.data import Examples, class_weights, load_split
from training.distill import _append, _custom_objects, _history, epoch_rng
from training.train import (
    DEFAULT_DATA,
    TimeKeeper,
    TrainConfig,
    compile_model,
    export_best,
    limited,
    one_hot,
    split_train,
)

log = logging.getLogger("training.finetune")

#: The framing error left after the fitted framing, and the camera: milder than distillation's.
FINE_JITTER = Jitter(scale=(0.87, 1.15), shift=0.06, roll=8.0)
#: Share of the training faces jittered in each epoch; the rest keep FER2013's framing.
JITTERED_SHARE = 0.5


def mixed_faces(faces: Faces, rng: np.random.Generator, jitter: Jitter, share: float) -> Faces:
    """``faces`` with a random ``share`` of them jittered (the same for the same generator)."""
    chosen = rng.random(len(faces)) < share
    out = faces.copy()
    if chosen.any():
        out[chosen] = jitter_faces(faces[chosen], rng, jitter)
    return out


def members_of(served: Any, archs: Sequence[str]) -> list[Any]:
    """The networks inside a served model (its Functional sub-models), in order."""
    import keras

    nets = [layer for layer in served.layers if isinstance(layer, keras.Model)]
    if len(nets) != len(archs):
        raise SystemExit(
            f"the model holds {len(nets)} networks but its metadata names {len(archs)} ({archs})"
        )
    return nets


def accuracy(model: Any, faces: Faces, labels: np.ndarray) -> float:
    predicted = np.argmax(model.predict(faces, batch_size=1024, verbose=0), axis=1)
    return float(np.mean(predicted == labels))


def finetune_member(
    config: TrainConfig,
    run_dir: Path,
    net: Any,
    train: Examples,
    targets: np.ndarray,
    *,
    val: Examples,
    val_jittered: Faces,
    teacher_weight: float,
) -> None:
    """Train one member for ``config.epochs`` (resuming from ``last.keras``), keeping the best."""
    import keras

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    clock = TimeKeeper(run_dir / "time.json")
    history_path = run_dir / "history.csv"
    done = _history(history_path)
    last_path, best_path = run_dir / "last.keras", run_dir / "best.keras"
    steps = int(np.ceil(len(train) / config.batch_size))
    start_path = run_dir / "start.json"
    if done and last_path.is_file() and start_path.is_file():
        net = keras.saving.load_model(last_path, custom_objects=_custom_objects(), compile=True)
        log.info("resuming %s after epoch %d", run_dir, len(done))
        done = [json.loads(start_path.read_text()), *done]
    else:
        done = []
        compile_model(net, config, steps)
        # Epoch "-1": the shipped weights, so fine-tuning keeps them unless it does better.
        start = {
            "epoch": -1.0,
            "val_accuracy": accuracy(net, val.images, val.labels),
            "val_jitter_accuracy": accuracy(net, val_jittered, val.labels),
        }
        start["score"] = (start["val_accuracy"] + start["val_jitter_accuracy"]) / 2
        net.save(best_path)
        log.info("%s as shipped: %s", run_dir.name, start)
        done = [start]
        history_path.unlink(missing_ok=True)
        start_path.write_text(json.dumps(start) + "\n")
    best = max(row["score"] for row in done)
    weights = class_weights(train.class_counts(), config.class_weight_power)
    sample_weight = np.asarray([weights[int(label)] for label in train.labels], np.float32)
    val_targets = one_hot(val.labels)
    trained = [row for row in done if row["epoch"] >= 0]
    for epoch in range(len(trained), config.epochs):
        started = time.monotonic()
        faces = mixed_faces(
            train.images, epoch_rng(config.seed, epoch), FINE_JITTER, JITTERED_SHARE
        )
        mix = teacher_weight * targets + (1 - teacher_weight) * one_hot(train.labels)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(faces))
        result = net.fit(
            faces[order],
            mix[order],
            sample_weight=sample_weight[order],
            batch_size=config.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            validation_data=(val.images, val_targets),
            verbose=0,
        )
        row = {key: float(values[-1]) for key, values in result.history.items()}
        row["epoch"] = epoch
        row["val_jitter_accuracy"] = accuracy(net, val_jittered, val.labels)
        row["score"] = (row["val_accuracy"] + row["val_jitter_accuracy"]) / 2
        row["seconds"] = round(time.monotonic() - started, 1)
        net.save(last_path)
        if row["score"] > best:
            best = row["score"]
            net.save(best_path)
        _append(history_path, row)
        clock.save()
        log.info(
            "%s epoch %d/%d: val %.4f, val jittered %.4f, score %.4f (best %.4f), %.0f s",
            run_dir.name,
            epoch + 1,
            config.epochs,
            row["val_accuracy"],
            row["val_jitter_accuracy"],
            row["score"],
            best,
            row["seconds"],
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=Path("models/emotion_model.keras"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--teacher-weight", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--limit", type=int, default=0, help="examples per split (smoke tests)")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="model file to write (default: RUN_DIR/emotion_model.keras)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    import keras

    from shared.keras_layers import load_model
    from shared.model_file import read_metadata

    archs = read_metadata(args.model).architecture.split("+")
    base = TrainConfig(
        data=str(args.data),
        arch=archs[0],
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
    keras.utils.set_random_seed(base.seed)
    data = Path(base.data)
    train, tune = split_train(load_split(data, "train"), base)
    val = limited(load_split(data, "test"), base.limit, base.seed)
    served = load_model(args.model)
    targets = np.asarray(served.predict(train.images, batch_size=1024, verbose=0), np.float32)
    val_jittered = jitter_faces(val.images, np.random.default_rng([base.seed, 7]), FINE_JITTER)
    log.info(
        "fine-tuning %s (%s): train %d, val %d", args.model, "+".join(archs), len(train), len(val)
    )
    dirs = []
    for index, (arch, net) in enumerate(zip(archs, members_of(served, archs), strict=True)):
        config = TrainConfig(**{**asdict(base), "arch": arch})
        run_dir = args.run_dir / f"member-{index}"
        finetune_member(
            config,
            run_dir,
            net,
            train,
            targets,
            val=val,
            val_jittered=val_jittered,
            teacher_weight=args.teacher_weight,
        )
        dirs.append(run_dir)
    output = args.output or args.run_dir / "emotion_model.keras"
    export_best(base, dirs[0], train, tune, val, output=output, ensemble=dirs[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
