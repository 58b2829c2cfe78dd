"""The emotion classifier: a validated model file run through TensorFlow Lite or a compiled
TensorFlow function."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from shared.image import SizeHW
from shared.labels import EMOTIONS, NUM_EMOTIONS
from shared.model_file import ModelFileError, ModelMetadata, read_metadata

__all__ = ["Classifier", "EmotionClassifier", "Probabilities"]

log = logging.getLogger(__name__)

Probabilities = npt.NDArray[np.float32]
#: tflite: converted at load, run by TensorFlow Lite (XNNPACK; fastest on a CPU); tensorflow: a
#: tf.function with a fixed signature (what runs on a GPU, where tflite is never used).
Runtime = Literal["tflite", "tensorflow"]
#: Batch sizes run once at load so the first real frame does not pay for tracing and allocation.
WARMUP_BATCHES = (1, 4)


class Classifier(Protocol):
    """What the worker loop needs from a classifier (tests and the hot reload swap it)."""

    @property
    def version(self) -> str: ...

    @property
    def input_hw(self) -> SizeHW: ...

    def classify(self, faces_gray: npt.NDArray[np.uint8]) -> Probabilities: ...


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


class EmotionClassifier:
    """Holds one loaded model; ``classify`` takes all faces of a frame (or several) at once."""

    def __init__(
        self,
        model: Any,
        metadata: ModelMetadata,
        path: Path,
        runtime: Runtime = "tensorflow",
        tf_threads: int = 0,
    ) -> None:
        import tensorflow as tf

        from .tflite_runner import TfliteRunner

        self._model = model
        self._metadata = metadata
        self._path = path
        height, width = metadata.input_hw
        signature = [tf.TensorSpec((None, height, width, 1), tf.uint8, name="faces_gray")]

        def predict(faces: Any) -> Any:
            return model(faces, training=False)

        # One trace for every batch size: the signature fixes everything but N.
        compiled = tf.function(predict, input_signature=signature, reduce_retracing=True)
        self._predict: Callable[[Any], Any] = compiled
        self.runtime: Runtime = "tensorflow"
        if runtime == "tflite" and not tf.config.list_physical_devices("GPU"):
            runner = TfliteRunner(compiled.get_concrete_function(), tf_threads)
            self._predict = runner.run
            self.runtime = "tflite"
        for batch in WARMUP_BATCHES:
            warm = self.classify(np.zeros((batch, height, width, 1), dtype=np.uint8))
            if warm.shape != (batch, NUM_EMOTIONS) or not np.all(np.isfinite(warm)):
                raise ModelFileError(
                    f"{path}: warm-up gave {warm.shape} outputs with non-finite values or of "
                    f"the wrong shape; expected ({batch}, {NUM_EMOTIONS}) probabilities"
                )

    @classmethod
    def load(
        cls, path: Path, tf_threads: int = 0, runtime: Runtime = "tflite"
    ) -> EmotionClassifier:
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
            classifier = cls(model, metadata, path, runtime, tf_threads)
        except ModelFileError:
            raise
        except Exception as error:
            raise ModelFileError(
                f"model file {path} failed its warm-up run: {type(error).__name__}: {error}"
            ) from error
        log.info(
            "model %s loaded from %s (input %dx%d gray uint8, %s) on %s through %s",
            classifier.version,
            path,
            *metadata.input_hw,
            metadata.preprocessing,
            compute_device(),
            classifier.runtime,
        )
        return classifier

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

    def classify(self, faces_gray: npt.NDArray[np.uint8]) -> Probabilities:
        """Probabilities (N, 7) in EMOTIONS order for uint8 faces (N, H, W, 1)."""
        height, width = self._metadata.input_hw
        if faces_gray.dtype != np.uint8 or faces_gray.shape[1:] != (height, width, 1):
            raise ValueError(
                f"faces_gray: expected uint8 (N, {height}, {width}, 1), "
                f"found {faces_gray.dtype} {faces_gray.shape}"
            )
        if faces_gray.shape[0] == 0:
            return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        output = self._predict(np.ascontiguousarray(faces_gray))
        return np.asarray(output, dtype=np.float32)


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
