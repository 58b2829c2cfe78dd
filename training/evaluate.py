"""Evaluate any model file on any FER2013 split: ``python -m training.evaluate``."""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.labels import EMOTIONS
from shared.settings import CommandSettings, load_settings
from training.data import (
    HOLDOUT,
    HOLDOUT_SEED,
    Examples,
    Split,
    load_split,
    stratified_holdout,
)
from training.metrics import classification_metrics, confusion_matrix

log = logging.getLogger("training.evaluate")


def predict_probabilities(
    model: Any, images: npt.NDArray[np.uint8], mirror: bool = False
) -> npt.NDArray[np.float32]:
    """Probabilities for (N, H, W, 1) uint8 faces, in batches, without Keras' per-call
    overhead; with ``mirror``, each face's averaged with its mirror image's (what the worker
    answers for a face it sees once, ``stages.views``)."""
    views = [images, images[:, :, ::-1]] if mirror else [images]
    answers = [model.predict(view, batch_size=256, verbose=0) for view in views]
    return np.asarray(np.mean(answers, axis=0), dtype=np.float32)


def faces_of(data: Path, split: str) -> Examples:
    """A split's faces; "holdout" is the slice of train/ that training runs hold out."""
    if split != "holdout":
        return load_split(data, cast(Split, split))
    _, holdout = stratified_holdout(load_split(data, "train"), HOLDOUT, HOLDOUT_SEED)
    return holdout


def write_report(
    run_dir: Path,
    labels: npt.NDArray[np.int64],
    probabilities: npt.NDArray[np.float32],
    history_csv: Path | None = None,
) -> dict[str, float]:
    """Write metrics.json, per_class.md, confusion_matrix.png and (with a history) curves."""
    run_dir.mkdir(parents=True, exist_ok=True)
    predicted = np.argmax(probabilities, axis=1)
    metrics = classification_metrics(labels, predicted)
    matrix = confusion_matrix(labels, predicted)
    (run_dir / "metrics.json").write_text(
        json.dumps(
            {"metrics": metrics, "confusion_matrix": matrix.tolist(), "labels": EMOTIONS}, indent=2
        )
        + "\n"
    )
    (run_dir / "per_class.md").write_text(per_class_table(metrics, matrix))
    plot_confusion(matrix, run_dir / "confusion_matrix.png")
    if history_csv is not None and history_csv.is_file():
        plot_history(history_csv, run_dir)
    return metrics


def per_class_table(metrics: dict[str, float], matrix: npt.NDArray[np.int64]) -> str:
    rows = ["| emotion | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for index, emotion in enumerate(EMOTIONS):
        rows.append(
            f"| {emotion} | {metrics[f'precision_{emotion}']:.3f}"
            f" | {metrics[f'recall_{emotion}']:.3f} | {metrics[f'f1_{emotion}']:.3f}"
            f" | {int(matrix[index].sum())} |"
        )
    rows.append(f"\nAccuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}\n")
    return "\n".join(rows)


def plot_confusion(matrix: npt.NDArray[np.int64], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(7, 6))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for row in range(len(EMOTIONS)):
        for col in range(len(EMOTIONS)):
            colour = "white" if normalised[row, col] > 0.5 else "black"
            axes.text(
                col,
                row,
                f"{normalised[row, col]:.2f}\n{matrix[row, col]}",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_history(history_csv: Path, run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(row["epoch"]) + 1 for row in rows]
    for metric in ("accuracy", "loss"):
        figure, axes = plt.subplots(figsize=(6, 4))
        for prefix, name in (("", "train"), ("val_", "validation")):
            if prefix + metric in rows[0]:
                axes.plot(epochs, [float(row[prefix + metric]) for row in rows], label=name)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(run_dir / f"learning_curve_{metric}.png", dpi=110)
        plt.close(figure)


class EvaluateSettings(CommandSettings):
    """Evaluate a model file on a FER2013 split and write its report (confusion matrix, per
    class figures). Every option is also read from EMOJIFY_EVALUATE_<OPTION>."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_EVALUATE_", cli_prog_name="python -m training.evaluate"
    )

    model: Path = Field(
        default=Path("models/emotion_model.keras"),
        description="A .keras file (run by Keras) or its .tflite (run by LiteRT, as CPU "
        "workers do), or a training run's checkpoint (last.keras, best.keras: no metadata "
        "beside it), which answers with both views of each face as the worker asks of it.",
    )
    data: Path = Field(description="Class-folder root or fer2013.csv.")
    split: Literal["train", "test", "private", "holdout"] = Field(
        default="test",
        description="A FER2013 split, or 'holdout': the slice of train/ that every run holds "
        "out (training.train's --holdout and holdout seed, at their defaults) and no epoch is "
        "chosen on.",
    )
    report_dir: Path | None = Field(
        default=None, description="Where the report goes (default: runs/eval-<model>-<split>)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = load_settings(EvaluateSettings, argv)
    examples = faces_of(args.data, args.split)
    if not args.model.with_suffix(".json").is_file() and args.model.suffix == ".keras":
        import keras

        from shared.keras_layers import CUSTOM_OBJECTS

        # A run's checkpoint: the network alone, served as the worker serves it.
        network = keras.saving.load_model(args.model, custom_objects=CUSTOM_OBJECTS, compile=False)
        version = f"checkpoint {args.model} ({network.name}, both views)"
        probabilities = predict_probabilities(network, examples.images, mirror=True)
    elif args.model.suffix == ".tflite":
        from stages.litert import LiteRtClassifier

        classifier = LiteRtClassifier.load(args.model.with_suffix(".keras"))
        version = f"{classifier.version} (.tflite)"
        probabilities = np.concatenate(
            [
                classifier.classify(examples.images[i : i + 256])
                for i in range(0, len(examples), 256)
            ]
        )
    else:
        from shared.keras_layers import load_model
        from shared.model_file import read_metadata

        metadata = read_metadata(args.model)
        version = metadata.version
        probabilities = predict_probabilities(
            load_model(args.model), examples.images, mirror=metadata.mirror == "worker"
        )
    name = args.model.name.replace(".", "-")
    report_dir = args.report_dir or Path("runs") / f"eval-{name}-{args.split}"
    metrics = write_report(report_dir, examples.labels, probabilities)
    log.info(
        "%s on %s (%d faces): accuracy %.4f, disgust recall %.3f; report in %s",
        version,
        examples.source,
        len(examples),
        metrics["accuracy"],
        metrics["recall_disgust"],
        report_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
