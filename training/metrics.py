"""Classification metrics as plain numpy: accuracy, per-class precision/recall/F1, confusion."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.labels import EMOTIONS


def confusion_matrix(
    labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Rows: true class, columns: predicted class, in ``EMOTIONS`` order."""
    n = len(EMOTIONS)
    return np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n).astype(np.int64)


def classification_metrics(
    labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> dict[str, float]:
    """Flat metrics: accuracy, macro recall/F1, and precision_/recall_/f1_<emotion>."""
    matrix = confusion_matrix(labels, predicted).astype(np.float64)
    true_positive = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    precision = np.divide(
        true_positive, predicted_count, out=np.zeros_like(true_positive), where=predicted_count > 0
    )
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    metrics = {
        "accuracy": float(true_positive.sum() / max(1.0, matrix.sum())),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "examples": float(matrix.sum()),
    }
    for index, emotion in enumerate(EMOTIONS):
        metrics[f"precision_{emotion}"] = float(precision[index])
        metrics[f"recall_{emotion}"] = float(recall[index])
        metrics[f"f1_{emotion}"] = float(f1[index])
    return {key: round(value, 4) for key, value in metrics.items()}
