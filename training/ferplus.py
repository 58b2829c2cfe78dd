"""FER+ (ten raters' votes for each FER2013 face, ``<data>/ferplus/<split>.csv``) as soft targets.

The votes of the seven FER2013 emotions, as a distribution, are a second opinion on a face's
label: ``label_targets`` mixes them into the one-hot label for every face that has them
(contempt, "unknown" and "not a face" votes are left out; a face without a vote for any of the
seven keeps its label alone).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.labels import EMOTIONS

from .data import DatasetError, Examples
from .train import one_hot

__all__ = ["FERPLUS_COLUMNS", "label_targets", "read_votes"]

log = logging.getLogger(__name__)

#: The FER+ column of each emotion, in ``EMOTIONS`` order.
FERPLUS_COLUMNS: Final = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sad": "sadness",
    "surprise": "surprise",
    "neutral": "neutral",
}


def read_votes(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Per face file (``angry/Training_10118481.png``) its votes for the seven emotions."""
    if not path.is_file():
        raise DatasetError(f"FER+ votes not found: {path}")
    columns = [FERPLUS_COLUMNS[emotion] for emotion in EMOTIONS]
    votes: dict[str, npt.NDArray[np.float32]] = {}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                votes[row["file"]] = np.asarray([float(row[c]) for c in columns], np.float32)
            except (KeyError, TypeError, ValueError) as error:
                raise DatasetError(f"{path}:{line}: not a FER+ votes row ({error})") from error
    return votes


def vote_distributions(
    names: Sequence[str], votes: dict[str, npt.NDArray[np.float32]]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Per face its votes as a distribution (N, 7), and whether it has any (N,)."""
    counts = np.zeros((len(names), len(EMOTIONS)), np.float32)
    for index, name in enumerate(names):
        if name in votes:
            counts[index] = votes[name]
    totals = counts.sum(axis=1, keepdims=True)
    has = totals[:, 0] > 0
    return np.divide(counts, np.maximum(totals, 1.0)).astype(np.float32), has


def label_targets(examples: Examples, weight: float, votes_csv: Path) -> npt.NDArray[np.float32]:
    """Each face's one-hot label with ``weight`` of it moved to its FER+ vote distribution
    (where it has votes); ``weight`` 0 is the one-hot label alone and reads no file."""
    labels = one_hot(examples.labels)
    if weight == 0:
        return labels
    if not examples.names:
        raise DatasetError(
            f"{examples.source}: FER+ votes need the class-folder form of FER2013 (file names)"
        )
    distributions, has = vote_distributions(examples.names, read_votes(votes_csv))
    if not has.any():
        raise DatasetError(f"{votes_csv}: no votes for any face of {examples.source}")
    log.info(
        "FER+ votes for %d of %d faces of %s, weight %g of the label",
        int(has.sum()),
        len(has),
        examples.source,
        weight,
    )
    mixed = (1 - weight) * labels + weight * distributions
    return np.where(has[:, None], mixed, labels).astype(np.float32)
