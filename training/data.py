"""FER2013 in the two forms users have: class folders and ``fer2013.csv``, as uint8 arrays."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from shared.labels import EMOTIONS

log = logging.getLogger(__name__)

Split = Literal["train", "test", "private"]
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}
)
CSV_USAGE: dict[Split, str] = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
FER_SIDE = 48


class DatasetError(Exception):
    """The data set is missing, incomplete or holds an unreadable image; says which path."""


@dataclass(frozen=True)
class Examples:
    """Images as (N, 48, 48, 1) uint8 and labels as (N,) int64 indices into ``EMOTIONS``."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    source: str
    #: Each face's file under its split (``angry/Training_10118481.png``), where it came from a
    #: class folder; empty for a CSV.
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.int64], source: str) -> Examples:
        """The faces ``keep`` selects (a mask or indices), names and all."""
        names = tuple(np.asarray(self.names, dtype=object)[keep]) if self.names else ()
        return Examples(self.images[keep], self.labels[keep], source, names)

    def class_counts(self) -> npt.NDArray[np.int64]:
        return np.bincount(self.labels, minlength=len(EMOTIONS)).astype(np.int64)


def load_split(data: Path, split: Split) -> Examples:
    """Load one split from a class-folder root (``<data>/<split>/<emotion>/``) or a CSV file."""
    if data.is_file():
        return load_csv_split(data, split)
    if data.is_dir():
        return load_folder_split(data / split)
    raise DatasetError(
        f"data not found: {data} (expected a folder with train/ and test/, or a CSV)"
    )


def load_folder_split(folder: Path) -> Examples:
    """Read ``folder/<emotion>/*`` for every emotion; every class folder must exist."""
    if not folder.is_dir():
        raise DatasetError(f"split folder not found: {folder}")
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    names: list[str] = []
    for index, emotion in enumerate(EMOTIONS):
        class_dir = folder / emotion
        if not class_dir.is_dir():
            raise DatasetError(
                f"class folder missing: {class_dir} (need one per emotion: {EMOTIONS})"
            )
        paths = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in paths:
            images.append(read_face(path))
            labels.append(index)
            names.append(f"{emotion}/{path.name}")
    if not labels:
        raise DatasetError(f"no images under {folder}")
    return Examples(_stack(images), np.asarray(labels, dtype=np.int64), str(folder), tuple(names))


def read_face(path: Path) -> npt.NDArray[np.uint8]:
    """One image file as a 48x48 grayscale uint8 array."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DatasetError(f"cannot decode image: {path}")
    if image.shape != (FER_SIDE, FER_SIDE):
        image = cv2.resize(image, (FER_SIDE, FER_SIDE), interpolation=cv2.INTER_AREA)
    return np.asarray(image, dtype=np.uint8)


def load_csv_split(path: Path, split: Split) -> Examples:
    """Read the rows of ``fer2013.csv`` (``emotion,pixels,Usage``) that belong to ``split``."""
    usage = CSV_USAGE[split]
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}: missing CSV columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            if row["Usage"] != usage:
                continue
            labels.append(_parse_label(row["emotion"], path, line))
            images.append(_parse_pixels(row["pixels"], path, line))
    if not labels:
        raise DatasetError(f"{path}: no rows with Usage={usage}")
    return Examples(_stack(images), np.asarray(labels, dtype=np.int64), f"{path}:{usage}")


def _parse_pixels(text: str, path: Path, line: int) -> npt.NDArray[np.uint8]:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError as error:
        raise DatasetError(f"{path}:{line}: pixels are not integers") from error
    if values.size != FER_SIDE * FER_SIDE or values.min() < 0 or values.max() > 255:
        raise DatasetError(f"{path}:{line}: expected {FER_SIDE * FER_SIDE} values in 0..255")
    return values.astype(np.uint8).reshape(FER_SIDE, FER_SIDE)


def _parse_label(text: str, path: Path, line: int) -> int:
    if not text.strip().isdigit() or int(text) >= len(EMOTIONS):
        raise DatasetError(f"{path}:{line}: emotion must be 0..{len(EMOTIONS) - 1}, found {text!r}")
    return int(text)


def _stack(images: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.uint8]:
    return np.stack(images)[..., np.newaxis]


#: The share of train/ that training runs hold out, and its seed (``training.train``'s defaults).
HOLDOUT = 0.1
HOLDOUT_SEED = 1337


def stratified_holdout(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Split off ``fraction`` of each class (seeded) as a tuning slice; return (rest, slice)."""
    rng = np.random.default_rng(seed)
    held: list[npt.NDArray[np.int64]] = []
    for index in range(len(EMOTIONS)):
        members = np.flatnonzero(examples.labels == index)
        count = round(len(members) * fraction)
        held.append(rng.choice(members, size=count, replace=False))
    mask = np.zeros(len(examples), dtype=bool)
    mask[np.concatenate(held)] = True
    return examples.subset(~mask, examples.source), examples.subset(
        mask, f"{examples.source}[holdout]"
    )


def class_weights(counts: npt.NDArray[np.int64], power: float = 0.5) -> dict[int, float]:
    """Inverse-frequency weights softened by ``power`` (0: none, 1: full), mean weight 1."""
    raw = (counts.sum() / np.maximum(counts, 1)) ** power
    raw = raw / float(np.average(raw, weights=counts))
    return {index: float(weight) for index, weight in enumerate(raw)}
