"""Train the emotion CNN on FER2013 and write the model file workers load (``training.train``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.labels import EMOTIONS
from shared.model_file import (
    ModelFileError,
    ModelMetadata,
    deflate_archive,
    read_metadata,
    utc_now_iso,
    write_model_files,
)
from training.data import Examples, class_weights, load_split, stratified_holdout

log = logging.getLogger("training.train")

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013"
DEFAULT_OUTPUT = Path("models/emotion_model.keras")
INPUT_HW = (48, 48)
TAUS = tuple(round(0.1 * step, 2) for step in range(0, 16))
MIN_DISGUST_RECALL = 0.55


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; saved in the run folder so ``--resume`` rebuilds it."""

    data: str
    arch: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    label_smoothing: float
    class_weight_power: float
    holdout: float
    patience: int
    seed: int
    limit: int
    # Separate from ``seed`` so that runs with other seeds hold out the same images, and an
    # ensemble of them can be tuned on a slice none of its members trained on.
    holdout_seed: int = 1337


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="class-folder root (with train/ and test/) or fer2013.csv",
    )
    parser.add_argument(
        "--arch",
        default="vgg",
        help="network: vgg (default), vgg-erasing, vgg-small or seed (baseline)",
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="peak of the warm-up + cosine schedule (SGD, Nesterov momentum)",
    )
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument(
        "--class-weight-power",
        type=float,
        default=0.5,
        help="0 = no class weighting, 1 = inverse frequency",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="fraction of train/ held out to tune the prior adjustment",
    )
    parser.add_argument("--patience", type=int, default=12, help="early-stopping patience (epochs)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="use at most this many examples per split (0: all; for smoke tests)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="folder for checkpoints and the report (default runs/<arch>-<time>)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint",
    )
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="skip training: write the model file from --run-dir's best checkpoint so far",
    )
    parser.add_argument(
        "--ensemble",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="with --export-only: also average the best checkpoints of these runs "
        "(repeatable; they must hold out the same slice of train/)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="model file to write (metadata goes beside it as .json)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write --output even when this is a --limit run or scores below the model "
        "already there (otherwise the result goes beside it as NAME.candidate.keras)",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=str(args.data),
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        class_weight_power=args.class_weight_power,
        holdout=args.holdout,
        patience=args.patience,
        seed=args.seed,
        limit=args.limit,
    )


def prepare_run_dir(args: argparse.Namespace) -> tuple[Path, TrainConfig]:
    """Create a new run folder, or reload the config of the run being resumed."""
    if args.resume or args.export_only:
        if args.run_dir is None:
            raise SystemExit("--resume and --export-only need --run-dir (the run's folder)")
        config_path = args.run_dir / "config.json"
        if not config_path.is_file():
            raise SystemExit(f"cannot resume: {config_path} not found")
        config = TrainConfig(**json.loads(config_path.read_text()))
        return args.run_dir, config
    config = config_from_args(args)
    run_dir = args.run_dir or Path("runs") / f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "config.json").exists():
        raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return run_dir, config


def describe_device() -> str:
    """Pick the device (GPU with mixed precision when present) and say which it is."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return f"GPU ({', '.join(gpu.name for gpu in gpus)}), mixed precision float16"
    return f"CPU ({os.cpu_count()} cores), float32"


def limited(examples: Examples, limit: int, seed: int) -> Examples:
    if not limit or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return Examples(examples.images[keep], examples.labels[keep], examples.source)


def split_train(train_split: Examples, config: TrainConfig) -> tuple[Examples, Examples]:
    """The training faces and the held-out slice for the prior adjustment, as every run cuts
    them (the holdout seed is the config's, so runs with other seeds hold out the same faces)."""
    everything = limited(train_split, config.limit, config.seed)
    return stratified_holdout(everything, config.holdout, config.holdout_seed)


def compile_model(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total // 10, 2 * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        decay_steps=total - warmup,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def one_hot(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    return np.eye(len(EMOTIONS), dtype=np.float32)[labels]


class TimeKeeper:
    """Training seconds summed over every session of a run, kept in the run folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous = float(json.loads(path.read_text())["seconds"]) if path.exists() else 0.0
        self.started = time.monotonic()

    def total(self) -> float:
        return self.previous + time.monotonic() - self.started

    def save(self) -> None:
        self.path.write_text(json.dumps({"seconds": round(self.total(), 1)}) + "\n")


def fit(config: TrainConfig, run_dir: Path, train: Examples, val: Examples) -> None:
    """Train with per-epoch checkpoints (resumable) and early stopping; best model to best.keras."""
    import keras
    import tensorflow as tf

    from training.models import build_model

    clock = TimeKeeper(run_dir / "time.json")

    def to_dataset(examples: Examples, shuffle: bool) -> Any:
        dataset = tf.data.Dataset.from_tensor_slices((examples.images, one_hot(examples.labels)))
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(
                len(examples), seed=config.seed, reshuffle_each_iteration=True
            )
        return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    train_ds, val_ds = to_dataset(train, shuffle=True), to_dataset(val, shuffle=False)
    steps = int(np.ceil(len(train) / config.batch_size))
    model = build_model(config.arch, INPUT_HW)
    compile_model(model, config, steps)
    log.info("%s: %d parameters", config.arch, model.count_params())

    class SaveTime(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            clock.save()

    best_path = run_dir / "best.keras"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "checkpoint"), save_freq="epoch"),
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor="val_accuracy", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=config.patience),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        SaveTime(),
    ]
    weights = class_weights(train.class_counts(), config.class_weight_power)
    log.info("class weights: %s", {EMOTIONS[i]: round(w, 2) for i, w in weights.items()})
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        class_weight=weights,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    clock.save()


def tune_logit_bias(
    probabilities: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    prior: npt.NDArray[np.float64],
) -> tuple[float, list[float]]:
    """Pick tau for bias = -tau * log(prior) on held-out training data.

    The best accuracy among the taus that keep disgust recall >= MIN_DISGUST_RECALL, the best
    mean per-class recall among equally accurate ones; if none keeps it, the tau with the best
    mean per-class recall.
    """
    from training.metrics import classification_metrics

    log_p = np.log(np.maximum(probabilities, 1e-7))
    scored = []
    for tau in TAUS:
        predicted = np.argmax(log_p - tau * np.log(prior), axis=1)
        metrics = classification_metrics(labels, predicted)
        scored.append(
            (tau, metrics["accuracy"], metrics["recall_disgust"], metrics["macro_recall"])
        )
    ok = [s for s in scored if s[2] >= MIN_DISGUST_RECALL]
    tau = max(ok, key=lambda s: (s[1], s[3]))[0] if ok else max(scored, key=lambda s: s[3])[0]
    log.info(
        "prior adjustment on holdout: %s -> tau %.2f",
        [(t, round(a, 4), round(r, 3)) for t, a, r, _ in scored],
        tau,
    )
    return tau, [float(-tau * np.log(p)) for p in prior]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    run_dir, config = prepare_run_dir(args)
    import keras

    keras.utils.set_random_seed(config.seed)
    log.info("training on %s; run folder %s", describe_device(), run_dir)
    data = Path(config.data)
    train, tune = split_train(load_split(data, "train"), config)
    val = limited(load_split(data, "test"), config.limit, config.seed)
    log.info(
        "train %d (holdout %d for the prior adjustment), validation %d (%s)",
        len(train),
        len(tune),
        len(val),
        val.source,
    )

    if not args.export_only:
        fit(config, run_dir, train, val)
    export_best(
        config,
        run_dir,
        train,
        tune,
        val,
        output=args.output,
        ensemble=args.ensemble,
        replace=args.replace,
    )
    return 0


def export_best(
    config: TrainConfig,
    run_dir: Path,
    train: Examples,
    tune: Examples,
    val: Examples,
    *,
    output: Path,
    ensemble: Sequence[Path] = (),
    replace: bool = False,
) -> ModelMetadata:
    """Wrap the run's best checkpoint (and those of ``ensemble`` runs) for serving, report on
    ``val``, write the model file."""
    from shared.keras_layers import load_model
    from training.evaluate import predict_probabilities, write_report
    from training.models import served_model

    runs = [run_dir, *ensemble]
    archs = [config.arch]
    for other in ensemble:
        other_config = TrainConfig(**json.loads((other / "config.json").read_text()))
        archs.append(other_config.arch)
        if (other_config.holdout, other_config.holdout_seed) != (
            config.holdout,
            config.holdout_seed,
        ):
            raise SystemExit(f"cannot ensemble {other}: it holds out another slice of train/")
    best_paths = [run / "best.keras" for run in runs]
    for best_path in best_paths:
        if not best_path.is_file():
            raise SystemExit(f"no checkpoint to export: {best_path} not found")
    if not len(tune):
        raise SystemExit(
            f"no held-out faces to tune the prior adjustment on: a {config.holdout:.0%} holdout "
            f"of {len(train)} training faces is empty per class; use more data or --holdout"
        )
    nets = [load_model(best_path) for best_path in best_paths]
    prior = train.class_counts() / len(train)
    plain = served_model(nets, [0.0] * len(EMOTIONS))
    tau, bias = tune_logit_bias(predict_probabilities(plain, tune.images), tune.labels, prior)
    model = served_model(nets, bias)
    probabilities = predict_probabilities(model, val.images)
    history = run_dir / "history.csv"
    metrics = write_report(run_dir, val.labels, probabilities, history)
    epochs = sum(_epochs_of(run) for run in runs)
    members = f", average of {len(nets)} networks" if len(nets) > 1 else ""

    def save(path: Path) -> None:
        model.save(path)
        deflate_archive(path)

    from training.export import DEFAULT_WEIGHTS, tflite_bytes

    output = destination(
        output, metrics["accuracy"], limited_run=bool(config.limit), replace=replace
    )
    metadata = write_model_files(
        output,
        save,
        {
            "labels": list(EMOTIONS),
            "input_hw": list(INPUT_HW),
            "preprocessing": "inside the model: scale to [0,1], centre crop 40x40, mirror "
            f"averaging{members}, prior adjustment tau={tau}",
            "architecture": "+".join(archs),
            "dataset": "FER2013",
            "train_split": f"Training minus a {config.holdout:.0%} stratified holdout",
            "validation_split": "PublicTest",
            "metrics": metrics,
            "epochs": epochs,
            "training_seconds": round(
                sum(TimeKeeper(run / "time.json").previous for run in runs), 1
            ),
            "created_at": utc_now_iso(),
        },
        tflite=(tflite_bytes(model, DEFAULT_WEIGHTS), DEFAULT_WEIGHTS),
    )
    log.info(
        "wrote %s (%s): accuracy %.4f, disgust recall %.3f",
        output,
        metadata.version,
        metrics["accuracy"],
        metrics["recall_disgust"],
    )
    return metadata


def candidate_path(output: Path) -> Path:
    """Where a result that must not replace the served model goes: beside it."""
    return output.with_name(f"{output.stem}.candidate{output.suffix}")


def destination(output: Path, accuracy: float, *, limited_run: bool, replace: bool) -> Path:
    """``output``, unless that would replace a served model by accident: a ``--limit`` run, or
    one that scores below the model there on the same validation split, goes beside it
    (workers hot-reload ``output``, so every live stream would get it)."""
    if replace or not output.exists():
        return output
    if limited_run:
        reason = "a --limit run (a smoke test) never replaces the served model"
    else:
        try:
            served = read_metadata(output).metrics.get("accuracy", 0.0)
        except ModelFileError as exc:
            log.warning("the model at %s is unreadable (%s); replacing it", output, exc)
            return output
        if accuracy >= served:
            return output
        reason = f"its accuracy {accuracy:.4f} is below the served model's {served:.4f}"
    aside = candidate_path(output)
    log.warning(
        "not replacing %s: %s; writing %s instead (--replace to override)", output, reason, aside
    )
    return aside


def _epochs_of(run_dir: Path) -> int:
    history = run_dir / "history.csv"
    return sum(1 for _ in history.open()) - 1 if history.is_file() else 0


if __name__ == "__main__":
    sys.exit(main())
