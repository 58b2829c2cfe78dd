"""The emotion classifier on LiteRT (``ai-edge-litert``): the model's ``.tflite`` file, run with
XNNPACK on every core, without TensorFlow (a CPU worker never imports it).

One interpreter, resized to the number of faces of a call when that changes: a resize costs
nothing measurable next to the network (18.6 ms a call with the batch changing at every call,
19.0 with one interpreter kept per batch size), while each further interpreter holds its own
unpacked weights (about 45 MiB for the shipped pair).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from shared.labels import NUM_EMOTIONS
from shared.model_file import ModelFileError, ModelMetadata, read_tflite

from .model_base import LoadedModel, Probabilities, check_warm_up

__all__ = ["MAX_BATCH", "LiteRtClassifier"]

log = logging.getLogger(__name__)

#: Larger batches are run in chunks of this many faces.
MAX_BATCH: Final = 64


class LiteRtClassifier(LoadedModel):
    """Probabilities from a model's ``.tflite``; ``classify`` takes (N, H, W, 1) uint8 faces."""

    runtime: Final = "litert"

    def __init__(self, content: bytes, metadata: ModelMetadata, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._metadata = metadata
        self._path = path
        # LiteRT runs on one thread unless told otherwise; 0 means every core here.
        self._threads = threads if threads > 0 else (os.cpu_count() or 1)
        self._interpreter: Any = Interpreter(model_content=content, num_threads=self._threads)
        self._batch = 0  # tensors not allocated yet
        (face,) = self._interpreter.get_input_details()
        (output,) = self._interpreter.get_output_details()
        self._face_index, self._output_index = face["index"], output["index"]
        height, width = metadata.input_hw
        face_shape = tuple(int(side) for side in face["shape_signature"][1:])
        if face_shape != (height, width, 1) or face["dtype"] is not np.uint8:
            raise ModelFileError(
                f"{path.with_suffix('.tflite')}: model input {face['dtype'].__name__} "
                f"{face_shape} differs from its metadata (expected uint8 {(height, width, 1)})"
            )
        if int(output["shape"][-1]) != NUM_EMOTIONS:
            raise ModelFileError(
                f"{path.with_suffix('.tflite')}: model output {tuple(output['shape'])}: "
                f"expected (N, {NUM_EMOTIONS}) probabilities"
            )

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> LiteRtClassifier:
        """Read and check the metadata and the ``.tflite`` beside ``path``, build, warm up.

        Raises ModelFileError naming the path when any of that fails.
        """
        metadata, content = read_tflite(path)
        try:
            classifier = cls(content, metadata, path, threads)
            check_warm_up(classifier, path)
        except ModelFileError:
            raise
        except (ValueError, RuntimeError) as error:
            raise ModelFileError(
                f"cannot load model file {path.with_suffix('.tflite')}: "
                f"{type(error).__name__}: {error}"
            ) from error
        log.info(
            "model %s loaded from %s (input %dx%d gray uint8, %s weights) through LiteRT "
            "on %d CPU threads",
            classifier.version,
            path.with_suffix(".tflite"),
            *metadata.input_hw,
            metadata.tflite_weights,
            classifier._threads,
        )
        return classifier

    def _run(self, faces: npt.NDArray[np.uint8]) -> Probabilities:
        chunks = [
            self._run_chunk(faces[i : i + MAX_BATCH]) for i in range(0, len(faces), MAX_BATCH)
        ]
        return np.concatenate(chunks, axis=0)

    def _run_chunk(self, faces: npt.NDArray[np.uint8]) -> Probabilities:
        interpreter = self._interpreter
        if len(faces) != self._batch:
            interpreter.resize_tensor_input(self._face_index, (len(faces), *self.input_hw, 1))
            interpreter.allocate_tensors()
            self._batch = len(faces)
        interpreter.set_tensor(self._face_index, faces)
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(self._output_index), dtype=np.float32)
