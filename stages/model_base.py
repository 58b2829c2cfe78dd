"""What every classifier is to the worker (``Classifier``), and what both runtimes' classifiers
share: the model's metadata, input checks, and the warm-up check at load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.image import SizeHW
from shared.labels import NUM_EMOTIONS
from shared.model_file import ModelFileError, ModelMetadata

from .views import View, average_views, view_rows

__all__ = [
    "Classifier",
    "LoadedModel",
    "Probabilities",
    "check_warm_up",
    "empty_probabilities",
    "validate_faces",
]

Probabilities = npt.NDArray[np.float32]
#: Batch sizes run once at load so the first real frame does not pay for tracing and allocation.
WARMUP_BATCHES = (1, 4)


class Classifier(Protocol):
    """What the worker loop needs from a classifier (tests and the hot reload swap it)."""

    @property
    def version(self) -> str: ...

    @property
    def input_hw(self) -> SizeHW: ...

    def classify(
        self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
    ) -> Probabilities:
        """Probabilities (N, 7) in EMOTIONS order for uint8 faces (N, H, W, 1), each seen as
        its ``views`` entry (``stages.views``; default: both views of every face)."""
        ...


def validate_faces(faces_gray: npt.NDArray[np.uint8], input_hw: SizeHW) -> None:
    """Refuse anything but uint8 faces (N, H, W, 1) of the model's input size."""
    height, width = input_hw
    if faces_gray.dtype != np.uint8 or faces_gray.shape[1:] != (height, width, 1):
        raise ValueError(
            f"faces_gray: expected uint8 (N, {height}, {width}, 1), "
            f"found {faces_gray.dtype} {faces_gray.shape}"
        )


def empty_probabilities() -> Probabilities:
    return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)


def check_warm_up(classifier: Classifier, path: Path) -> None:
    """Run each of ``WARMUP_BATCHES`` once, so the first real frame pays no set-up, and check
    the outputs are probabilities of the right shape."""
    height, width = classifier.input_hw
    for batch in WARMUP_BATCHES:
        warm = classifier.classify(np.zeros((batch, height, width, 1), dtype=np.uint8))
        if warm.shape != (batch, NUM_EMOTIONS) or not np.all(np.isfinite(warm)):
            raise ModelFileError(
                f"{path}: warm-up gave {warm.shape} outputs with non-finite values or of "
                f"the wrong shape; expected ({batch}, {NUM_EMOTIONS}) probabilities"
            )


class LoadedModel:
    """What both runtimes' classifiers share: what they say of the model they hold (from its
    metadata), and ``classify``, which lays out each face's views for the runtime's ``_run``."""

    _metadata: ModelMetadata
    _path: Path

    def classify(
        self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
    ) -> Probabilities:
        """Probabilities (N, 7) in EMOTIONS order for uint8 faces (N, H, W, 1), each seen as
        its ``views`` entry (default: both views of every face). A model that averages each
        face with its mirror image itself (metadata ``mirror: inside``) sees each face once
        whatever ``views`` says."""
        validate_faces(faces_gray, self.input_hw)
        if faces_gray.shape[0] == 0:
            return empty_probabilities()
        if self._metadata.mirror == "inside":
            return self._run(np.ascontiguousarray(faces_gray))
        chosen: Sequence[View] = ["both"] * len(faces_gray) if views is None else views
        return average_views(self._run(view_rows(faces_gray, chosen)), chosen)

    def _run(self, faces_gray: npt.NDArray[np.uint8]) -> Probabilities:
        """The network on each row of ``faces_gray`` (N >= 1, checked), (N, 7) out."""
        raise NotImplementedError

    @property
    def version(self) -> str:
        return self._metadata.version

    @property
    def input_hw(self) -> SizeHW:
        return self._metadata.input_hw

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def path(self) -> Path:
        return self._path
