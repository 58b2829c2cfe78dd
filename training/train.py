"""Train the emotion CNN on FER2013 and write the model file workers load (``training.train``)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from shared.labels import EMOTIONS
from shared.model_file import (
    ModelFileError,
    ModelMetadata,
    deflate_archive,
    read_metadata,
    utc_now_iso,
    write_model_files,
)
from shared.settings import CommandSettings, load_settings
from training.data import (
    HOLDOUT,
    HOLDOUT_SEED,
    Examples,
    class_weights,
    load_split,
    stratified_holdout,
)

log = logging.getLogger("training.train")

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013"
DEFAULT_OUTPUT = Path("models/emotion_model.keras")
INPUT_HW = (48, 48)
TAUS = tuple(round(0.1 * step, 2) for step in range(0, 16))
MIN_DISGUST_RECALL = 0.55


class TrainConfig(BaseModel):
    """Everything that defines a run; saved in the run folder so ``--resume`` rebuilds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str = Field(
        default=str(DEFAULT_DATA), description="Class-folder root (with train/ and test/)."
    )
    arch: str = Field(
        default="vgg", description="Network: vgg, vgg-erasing, vgg-small or seed (baseline)."
    )
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=128, ge=1)
    learning_rate: float = Field(
        default=0.05, gt=0, description="Peak of the warm-up + cosine schedule (SGD, Nesterov)."
    )
    weight_decay: float = Field(default=5e-4, ge=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    class_weight_power: float = Field(
        default=0.5, ge=0, description="0 = no class weighting, 1 = inverse frequency."
    )
    holdout: float = Field(
        default=HOLDOUT, ge=0, lt=1, description="Share of train/ held out to tune the prior."
    )
    patience: int = Field(default=12, ge=1, description="Early-stopping patience (epochs).")
    seed: int = 1337
    limit: int = Field(
        default=0, ge=0, description="At most this many faces per split (0: all; smoke tests)."
    )
    # Separate from ``seed`` so that runs with other seeds hold out the same images, and an
    # ensemble of them can be tuned on a slice none of its members trained on.
    holdout_seed: int = HOLDOUT_SEED


class TrainSettings(CommandSettings, TrainConfig):
    """Train the emotion CNN on FER2013 and write the model file workers load. Every option
    is also read from EMOJIFY_TRAIN_<OPTION>."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_TRAIN_", cli_prog_name="python -m training.train", frozen=False
    )

    run_dir: Path | None = Field(
        default=None,
        description="Folder for checkpoints and the report (default runs/<arch>-<time>).",
    )
    resume: bool = Field(
        default=False, description="Continue the run in --run-dir from its last checkpoint."
    )
    export_only: bool = Field(
        default=False,
        description="Skip training: write the model file from --run-dir's best checkpoint.",
    )
    ensemble: list[Path] = Field(
        default_factory=list,
        description="With --export-only: also average the best checkpoints of these runs "
        "(repeatable; they must hold out the same slice of train/).",
    )
    output: Path = Field(
        default=DEFAULT_OUTPUT,
        description="Model file to write (metadata goes beside it as .json).",
    )
    replace: bool = Field(
        default=False,
        description="Write --output even when this is a --limit run or scores below the model "
        "already there (otherwise the result goes beside it as NAME.candidate.keras).",
    )

    def run_config(self) -> TrainConfig:
        return TrainConfig(**self.model_dump(include=set(TrainConfig.model_fields)))


def read_config(run_dir: Path) -> TrainConfig:
    """The config a run folder was started with."""
    return TrainConfig.model_validate_json((run_dir / "config.json").read_text())


def write_config(run_dir: Path, config: BaseModel) -> None:
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2) + "\n")


def prepare_run_dir(settings: TrainSettings) -> tuple[Path, TrainConfig]:
    """Create a new run folder, or reload the config of the run being resumed."""
    if settings.resume or settings.export_only:
        if settings.run_dir is None:
            raise SystemExit("--resume and --export-only need --run-dir (the run's folder)")
        if not (settings.run_dir / "config.json").is_file():
            raise SystemExit(f"cannot resume: {settings.run_dir / 'config.json'} not found")
        return settings.run_dir, read_config(settings.run_dir)
    config = settings.run_config()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = settings.run_dir or Path("runs") / f"{config.arch}-{stamp}"
    if (run_dir / "config.json").exists():
        raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
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
    return examples.subset(keep, examples.source)


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
    settings = load_settings(TrainSettings, argv)
    run_dir, config = prepare_run_dir(settings)
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

    if not settings.export_only:
        fit(config, run_dir, train, val)
    export_best(
        config,
        run_dir,
        train,
        tune,
        val,
        output=settings.output,
        ensemble=settings.ensemble,
        replace=settings.replace,
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
    ``val``, write the model file. The served model sees each face once; the worker averages
    a face with its mirror image where it wants both (``stages.views``), and the figures here
    are for both, what it answers for a face it sees once."""
    from shared.keras_layers import load_model
    from training.evaluate import predict_probabilities, write_report
    from training.models import served_model

    runs = [run_dir, *ensemble]
    for other in ensemble:
        other_config = read_config(other)
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
    # Each checkpoint's own network: a campaign may have changed it at a warm restart.
    archs = [net.name.replace("_", "-") for net in nets]
    prior = train.class_counts() / len(train)
    plain = served_model(nets, [0.0] * len(EMOTIONS))
    tuned = predict_probabilities(plain, tune.images, mirror=True)
    tau, bias = tune_logit_bias(tuned, tune.labels, prior)
    model = served_model(nets, bias)
    probabilities = predict_probabilities(model, val.images, mirror=True)
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
            "preprocessing": "inside the model: scale to [0,1], centre crop 40x40"
            f"{members}, prior adjustment tau={tau}",
            "mirror": "worker",
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
