"""The prior adjustment is tuned on held-out training data: what it picks, and on ties."""

from __future__ import annotations

import numpy as np
import pytest

from shared.labels import EMOTIONS
from training.train import tune_logit_bias

pytestmark = pytest.mark.timeout(10)

ANGRY, DISGUST = EMOTIONS.index("angry"), EMOTIONS.index("disgust")


def _row(angry: float, disgust: float) -> list[float]:
    row = [0.0] * len(EMOTIONS)
    row[ANGRY], row[DISGUST] = angry, disgust
    return row


def test_ties_in_accuracy_go_to_the_better_mean_recall() -> None:
    prior = np.full(len(EMOTIONS), 0.98 / 6)
    prior[DISGUST] = 0.02
    # From tau 0.1 on, one disgust face becomes right and one angry face wrong: the accuracy
    # stays, the mean recall rises (one of three disgust faces against one of four angry).
    rows = [
        (DISGUST, _row(0.1, 0.9)),
        (DISGUST, _row(0.1, 0.9)),
        (DISGUST, _row(0.55, 0.45)),
        (ANGRY, _row(0.52, 0.48)),
        *[(ANGRY, _row(0.95, 0.05)) for _ in range(3)],
    ]
    labels = np.array([label for label, _ in rows], dtype=np.int64)
    probabilities = np.array([row for _, row in rows], dtype=np.float32)
    tau, bias = tune_logit_bias(probabilities, labels, prior)
    assert tau == 0.1
    assert bias == pytest.approx([-0.1 * np.log(p) for p in prior])


def test_without_a_tau_that_keeps_disgust_recall_it_takes_the_best_mean_recall() -> None:
    prior = np.full(len(EMOTIONS), 1 / len(EMOTIONS))
    labels = np.array([DISGUST, ANGRY], dtype=np.int64)
    probabilities = np.array([_row(0.9, 0.1), _row(0.9, 0.1)], dtype=np.float32)
    tau, _ = tune_logit_bias(probabilities, labels, prior)
    # A flat prior makes every tau alike: the first is taken.
    assert tau == 0.0
