"""Keras layers that live inside saved model files; imported only where Keras already is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras import ops

PACKAGE = "emojify"


@keras.saving.register_keras_serializable(package=PACKAGE)
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left to right, always (test-time augmentation, not a random layer). Model
    files written before the worker chose each face's views (metadata ``mirror: inside``)
    hold it; it stays so that they still load."""

    def call(self, images: Any) -> Any:
        return ops.flip(images, axis=-2)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogitAdjustment(keras.layers.Layer):
    """Re-weight probabilities by fixed per-class factors: softmax(log p + bias).

    The bias is ``-tau * log(prior)`` tuned on held-out training data, so rare classes such as
    disgust are not drowned by the frequent ones.
    """

    def __init__(self, bias: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bias = [float(b) for b in bias]

    def call(self, probabilities: Any) -> Any:
        logits = ops.log(ops.maximum(probabilities, 1e-7)) + ops.convert_to_tensor(self.bias)
        return ops.softmax(logits, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bias": self.bias}


CUSTOM_OBJECTS: dict[str, type[keras.layers.Layer]] = {
    f"{PACKAGE}>HorizontalFlip": HorizontalFlip,
    f"{PACKAGE}>LogitAdjustment": LogitAdjustment,
}


def load_model(path: str | Path) -> keras.Model:
    """Load a model file written by training (no optimizer state, our layers registered)."""
    return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
