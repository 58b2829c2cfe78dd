"""The emotion classifier: what the worker needs of one (``Classifier``), the TensorFlow one
(``KerasClassifier``: the ``.keras`` file as a compiled function, for GPUs), and the choice
between it and LiteRT (``stages.litert``), which a CPU worker uses without ever
importing TensorFlow."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from shared.labels import EMOTIONS, NUM_EMOTIONS
from shared.model_file import ModelFileError, ModelMetadata, read_metadata

from .model_base import Classifier, LoadedModel, Probabilities, check_warm_up

__all__ = [
    "Classifier",
    "KerasClassifier",
    "Probabilities",
    "Runtime",
    "choose_runtime",
    "load_classifier",
]

log = logging.getLogger(__name__)

#: litert: the ``.tflite`` file on LiteRT (XNNPACK; fastest on a CPU, no TensorFlow);
#: tensorflow: the ``.keras`` file as a tf.function (what runs on a GPU); auto: tensorflow where
#: an NVIDIA GPU and TensorFlow are both present, else litert.
Runtime = Literal["auto", "litert", "tensorflow"]
#: Where the NVIDIA driver lists the GPUs it sees (one folder per GPU).
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def choose_runtime(runtime: Runtime) -> Literal["litert", "tensorflow"]:
    """The runtime ``auto`` stands for here, without importing TensorFlow to find out."""
    if runtime != "auto":
        return runtime
    has_gpu = NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    has_tensorflow = importlib.util.find_spec("tensorflow") is not None
    return "tensorflow" if has_gpu and has_tensorflow else "litert"


def load_classifier(path: Path, runtime: Runtime = "auto", threads: int = 0) -> Classifier:
    """The model at ``path`` on ``runtime``; raises ModelFileError naming what is wrong."""
    if choose_runtime(runtime) == "tensorflow":
        return KerasClassifier.load(path, threads)
    from .litert import LiteRtClassifier

    return LiteRtClassifier.load(path, threads)


def configure_threads(tf_threads: int) -> None:
    """Bound TensorFlow's thread pools; must run before TensorFlow executes anything."""
    import tensorflow as tf

    if tf_threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
            tf.config.threading.set_inter_op_parallelism_threads(tf_threads)
        except RuntimeError as error:  # already initialised in this process (tests)
            log.debug("TensorFlow threads already fixed: %s", error)


def compute_device() -> str:
    """Where TensorFlow runs the model: its GPUs when it sees any, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return ", ".join(gpu.name for gpu in gpus) if gpus else f"CPU ({os.cpu_count()} cores)"


class KerasClassifier(LoadedModel):
    """The ``.keras`` file as a compiled TensorFlow function; ``classify`` takes all faces of a
    frame (or several) at once."""

    runtime: Final = "tensorflow"

    def __init__(self, model: Any, metadata: ModelMetadata, path: Path) -> None:
        import tensorflow as tf

        self._model = model
        self._metadata = metadata
        self._path = path
        height, width = metadata.input_hw
        signature = [tf.TensorSpec((None, height, width, 1), tf.uint8, name="faces_gray")]

        def predict(faces: Any) -> Any:
            return model(faces, training=False)

        # One trace for every batch size: the signature fixes everything but N.
        self._predict: Callable[[Any], Any] = tf.function(
            predict, input_signature=signature, reduce_retracing=True
        )
        check_warm_up(self, path)

    @classmethod
    def load(cls, path: Path, tf_threads: int = 0) -> KerasClassifier:
        """Validate the metadata, load the model, check its shapes, compile and warm up.

        Raises ModelFileError naming the path when any of that fails.
        """
        # The metadata first: a missing or mismatched file fails before TensorFlow loads.
        metadata = read_metadata(path)
        if metadata.labels != EMOTIONS:  # read_metadata refuses this too; never rely on one check
            raise ModelFileError(
                f"{path}: label order {list(metadata.labels)} differs from {list(EMOTIONS)}"
            )
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        configure_threads(tf_threads)
        from shared.keras_layers import load_model

        try:
            model = load_model(path)
        except Exception as error:  # Keras raises many types for a bad file; all mean the same
            raise ModelFileError(
                f"cannot load model file {path}: {type(error).__name__}: {error}"
            ) from error
        _check_shapes(model, metadata, path)
        try:
            classifier = cls(model, metadata, path)
        except ModelFileError:
            raise
        except Exception as error:
            raise ModelFileError(
                f"model file {path} failed its warm-up run: {type(error).__name__}: {error}"
            ) from error
        log.info(
            "model %s loaded from %s (input %dx%d gray uint8, %s) on %s through TensorFlow",
            classifier.version,
            path,
            *metadata.input_hw,
            metadata.preprocessing,
            compute_device(),
        )
        return classifier

    def _run(self, faces_gray: npt.NDArray[np.uint8]) -> Probabilities:
        return np.asarray(self._predict(faces_gray), dtype=np.float32)


def _check_shapes(model: Any, metadata: ModelMetadata, path: Path) -> None:
    height, width = metadata.input_hw
    input_shape = tuple(model.input_shape)
    output_shape = tuple(model.output_shape)
    if input_shape[1:] != (height, width, 1):
        raise ModelFileError(
            f"{path}: model input {input_shape} differs from its metadata "
            f"(expected (None, {height}, {width}, 1))"
        )
    if output_shape[1:] != (NUM_EMOTIONS,):
        raise ModelFileError(
            f"{path}: model output {output_shape}: expected (None, {NUM_EMOTIONS}) probabilities"
        )
