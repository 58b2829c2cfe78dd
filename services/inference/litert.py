"""The emotion classifier on LiteRT (``ai-edge-litert``): the model's ``.tflite`` file, run with
XNNPACK on every core, without TensorFlow (a CPU worker never imports it).

One interpreter is kept per batch size rounded up to a power of two, so a frame's faces never
force a re-allocation; the padding rows are dropped from the output.
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

from .model_base import (
    LoadedModel,
    Probabilities,
    check_warm_up,
    empty_probabilities,
    validate_faces,
)

__all__ = ["MAX_BATCH", "LiteRtClassifier", "padded_size"]

log = logging.getLogger(__name__)

#: Larger batches are run in chunks of this many faces.
MAX_BATCH: Final = 64


def padded_size(count: int) -> int:
    """The power of two at least ``count`` (1 for 0), capped at ``MAX_BATCH``."""
    return min(MAX_BATCH, 1 << max(0, count - 1).bit_length())


class LiteRtClassifier(LoadedModel):
    """Probabilities from a model's ``.tflite``; ``classify`` takes (N, H, W, 1) uint8 faces."""

    runtime: Final = "litert"

    def __init__(self, content: bytes, metadata: ModelMetadata, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter_class = Interpreter
        self._content = content
        self._metadata = metadata
        self._path = path
        # LiteRT runs on one thread unless told otherwise; 0 means every core here.
        self._threads = threads if threads > 0 else (os.cpu_count() or 1)
        self._interpreters: dict[int, Any] = {}
        probe = Interpreter(model_content=content, num_threads=1)
        (face,) = probe.get_input_details()
        (output,) = probe.get_output_details()
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

    def classify(self, faces_gray: npt.NDArray[np.uint8]) -> Probabilities:
        """Probabilities (N, 7) in EMOTIONS order for uint8 faces (N, H, W, 1)."""
        validate_faces(faces_gray, self.input_hw)
        if faces_gray.shape[0] == 0:
            return empty_probabilities()
        faces = np.ascontiguousarray(faces_gray)
        chunks = [
            self._run_chunk(faces[i : i + MAX_BATCH]) for i in range(0, len(faces), MAX_BATCH)
        ]
        return np.concatenate(chunks, axis=0)

    def _interpreter(self, batch: int) -> Any:
        if batch not in self._interpreters:
            interpreter = self._interpreter_class(
                model_content=self._content, num_threads=self._threads
            )
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, (batch, *self.input_hw, 1))
            interpreter.allocate_tensors()
            self._interpreters[batch] = interpreter
        return self._interpreters[batch]

    def _run_chunk(self, faces: npt.NDArray[np.uint8]) -> Probabilities:
        batch = padded_size(len(faces))
        interpreter = self._interpreter(batch)
        padded = np.zeros((batch, *faces.shape[1:]), dtype=np.uint8)
        padded[: len(faces)] = faces
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], padded)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        return np.asarray(output[: len(faces)], dtype=np.float32)
