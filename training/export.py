"""Write the LiteRT form of a model file: ``python -m training.export --model M.keras``.

CPU workers run ``<name>.tflite`` with LiteRT (``ai-edge-litert``) and never import TensorFlow;
this converts the ``.keras`` once, writes the ``.tflite`` beside it and updates the metadata to
name it (``training.train`` does the same as its last step). ``int8`` (the default: int8
weights, each face's activations quantized at run time) runs the shipped pair 3.4x as fast
as float16 weights on XNNPACK at a quarter of float32's file, for 0.2 points of PublicTest
(docs/training.md); float16 weights give float32's accuracy at half its file.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.model_file import ModelMetadata, TfliteWeights, read_metadata, write_tflite
from shared.settings import CommandSettings, load_settings

log = logging.getLogger("training.export")

DEFAULT_WEIGHTS: TfliteWeights = "int8"


def tflite_bytes(model: Any, weights: TfliteWeights = DEFAULT_WEIGHTS) -> bytes:
    """The Keras ``model`` (uint8 faces in, probabilities out) as a LiteRT flatbuffer with a
    free batch size; the weights are frozen in as ``weights``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    height, width, channels = model.input_shape[1:]
    signature = [tf.TensorSpec((None, height, width, channels), tf.uint8, name="faces_gray")]

    def predict(faces: Any) -> Any:
        return model(faces, training=False)

    concrete = tf.function(predict, input_signature=signature).get_concrete_function()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Without the model as 'trackable object' the converter freezes the weights into
        # constants (as resource variables, XNNPACK would read them as NaN).
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return bytes(converter.convert())


def export_tflite(model_path: Path, weights: TfliteWeights = DEFAULT_WEIGHTS) -> ModelMetadata:
    """Convert the model file at ``model_path`` and write its ``.tflite`` and metadata."""
    from shared.keras_layers import load_model

    metadata = read_metadata(model_path)
    content = tflite_bytes(load_model(model_path), weights)
    return write_tflite(model_path, content, metadata, weights)


class ExportSettings(CommandSettings):
    """Write a model file's .tflite (what CPU workers run) and its metadata. Every option is
    also read from EMOJIFY_EXPORT_<OPTION>."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_EXPORT_", cli_prog_name="python -m training.export"
    )

    model: Path = Field(default=Path("models/emotion_model.keras"), description="Model file.")
    weights: TfliteWeights = Field(default=DEFAULT_WEIGHTS, description="Weight storage.")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = load_settings(ExportSettings, argv)
    metadata = export_tflite(args.model, args.weights)
    log.info(
        "wrote %s (%s weights, sha256 %s…) for %s",
        args.model.with_suffix(".tflite"),
        args.weights,
        (metadata.tflite_sha256 or "")[:12],
        metadata.version,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
