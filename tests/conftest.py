"""Shared fixtures: a tiny real model file (Keras + metadata) and a real portrait with its face."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest

from shared.labels import EMOTIONS
from shared.model_file import write_model_files

#: Hand-labelled face (eyebrows to chin) in skimage's astronaut, 512x512, as x, y, w, h.
ASTRONAUT_FACE_XYWH: Final = (175, 62, 92, 98)

TINY_METADATA: Final[dict[str, object]] = {
    "labels": list(EMOTIONS),
    "input_hw": [48, 48],
    "preprocessing": "inside the model: scale to [0,1]",
    "architecture": "tiny",
    "dataset": "none (random weights, for tests)",
    "train_split": "none",
    "validation_split": "none",
    "metrics": {},
    "epochs": 0,
    "training_seconds": 0.0,
    "created_at": "2026-01-01T00:00:00+00:00",
    "mirror": "worker",
}


def build_tiny_model(input_hw: tuple[int, int] = (48, 48), seed: int = 0) -> Any:
    """uint8 (H, W, 1) faces -> 7 softmax probabilities, with random weights."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*input_hw, 1), dtype="uint8", name="face_gray")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(EMOTIONS), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def write_tiny_model(model_path: Path, seed: int = 0) -> Path:
    """A real model file, its ``.tflite`` and its metadata at ``model_path`` (``.keras``), as
    training writes them."""
    from training.export import tflite_bytes

    model = build_tiny_model(seed=seed)
    tflite = (tflite_bytes(model, "float32"), "float32")
    write_model_files(model_path, model.save, dict(TINY_METADATA), tflite=tflite)
    return model_path


def copy_model(source: Path, target: Path) -> Path:
    """Copy a model file with its ``.tflite`` and metadata to ``target`` (a ``.keras`` path)."""
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copy(source.with_suffix(suffix), target.with_suffix(suffix))
    return target


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model file made once per session; copy it before changing it."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "emotion_model.keras")


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """skimage's astronaut portrait (512x512) as a BGR uint8 frame."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])
