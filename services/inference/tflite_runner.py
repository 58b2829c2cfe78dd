"""Run a Keras model through TensorFlow Lite (XNNPACK on CPU): less per-call overhead than TF.

The model is converted once at load from a concrete function with a free batch size. One
interpreter is kept per batch size rounded up to a power of two, so a frame's faces never
force a re-allocation; the padding rows are dropped from the output.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BATCH", "TfliteRunner"]

#: Larger batches are run in chunks of this many faces.
MAX_BATCH: Final = 64


def padded_size(count: int) -> int:
    """The power of two at least ``count`` (1 for 0), capped at ``MAX_BATCH``."""
    return min(MAX_BATCH, 1 << max(0, count - 1).bit_length())


class TfliteRunner:
    """Probabilities from a converted model; ``run`` takes (N, H, W, 1) uint8 faces."""

    def __init__(self, concrete_function: Any, threads: int) -> None:
        import tensorflow as tf

        # Without the model as 'trackable object' the converter freezes the weights into
        # constants; with it, they stay resource variables that XNNPACK reads as NaN.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function])
            self._content = converter.convert()
        # TensorFlow Lite runs on one thread unless told otherwise; 0 means every core here.
        self._threads = threads if threads > 0 else (os.cpu_count() or 1)
        self._interpreters: dict[int, Any] = {}

    def _interpreter(self, batch: int) -> Any:
        if batch not in self._interpreters:
            import tensorflow as tf

            with warnings.catch_warnings():
                # TF 2.20+ points to the separate ai_edge_litert package; this one still works.
                warnings.simplefilter("ignore", UserWarning)
                interpreter = tf.lite.Interpreter(
                    model_content=self._content, num_threads=self._threads
                )
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, (batch, *self._face_shape(interpreter)))
            interpreter.allocate_tensors()
            self._interpreters[batch] = interpreter
        return self._interpreters[batch]

    @staticmethod
    def _face_shape(interpreter: Any) -> tuple[int, ...]:
        return tuple(int(side) for side in interpreter.get_input_details()[0]["shape"][1:])

    def run(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        chunks = [
            self._run_chunk(faces[i : i + MAX_BATCH]) for i in range(0, len(faces), MAX_BATCH)
        ]
        return np.concatenate(chunks, axis=0)

    def _run_chunk(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        batch = padded_size(len(faces))
        interpreter = self._interpreter(batch)
        padded = np.zeros((batch, *faces.shape[1:]), dtype=np.uint8)
        padded[: len(faces)] = faces
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], padded)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        return np.asarray(output[: len(faces)], dtype=np.float32)
