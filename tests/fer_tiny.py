"""Tiny FER2013-shaped data sets made by the tests, in both forms users have."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from shared.labels import EMOTIONS

CSV_USAGE = {"train": "Training", "test": "PublicTest"}


def tiny_faces(per_class: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """(label, 48x48 uint8 image) pairs; each class has its own brightness so one epoch learns."""
    rng = np.random.default_rng(seed)
    pairs = []
    for label in range(len(EMOTIONS)):
        for _ in range(per_class):
            base = 30 + 30 * label
            image = np.clip(rng.normal(base, 12, size=(48, 48)), 0, 255).astype(np.uint8)
            pairs.append((label, image))
    return pairs


def write_fer_folder(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    """``root/train/<emotion>/*.png`` and ``root/test/<emotion>/*.png``."""
    for offset, split in enumerate(("train", "test")):
        for index, (label, image) in enumerate(tiny_faces(per_class, seed + offset)):
            folder = root / split / EMOTIONS[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{CSV_USAGE[split]}_{index:05d}.png"), image)
    return root


def write_fer_csv(path: Path, per_class: int = 4, seed: int = 0) -> Path:
    """``fer2013.csv`` with the same images as ``write_fer_folder`` (same seed), rows shuffled."""
    rows = []
    for offset, split in enumerate(("train", "test")):
        for label, image in tiny_faces(per_class, seed + offset):
            pixels = " ".join(str(value) for value in image.ravel())
            rows.append({"emotion": label, "pixels": pixels, "Usage": CSV_USAGE[split]})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["emotion", "pixels", "Usage"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_ferplus_votes(root: Path, seed: int = 0) -> Path:
    """``root/ferplus/train.csv``: ten random raters' votes for every face of ``root/train``."""
    rng = np.random.default_rng(seed)
    columns = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
    columns += ["contempt", "unknown", "NF"]
    path = root / "ferplus" / "train.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "fer2013_label", *columns])
        for image in sorted((root / "train").glob("*/*.png")):
            votes = np.bincount(rng.integers(0, len(columns), 10), minlength=len(columns))
            writer.writerow([f"{image.parent.name}/{image.name}", image.parent.name, *votes])
    return path
