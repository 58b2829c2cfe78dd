"""The classifier on a tiny real model file: compiled path, batch shapes, refused model files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.inference.classifier import EmotionClassifier
from shared.image import face_gray
from shared.labels import EMOTIONS
from shared.model_file import ModelFileError, metadata_path, read_metadata, sha256_file
from tests.conftest import ASTRONAUT_FACE_XYWH

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=["tflite", "tensorflow"])
def classifier(
    tiny_model_path: Path, request: pytest.FixtureRequest
) -> Iterator[EmotionClassifier]:
    loaded = EmotionClassifier.load(tiny_model_path, tf_threads=1, runtime=request.param)
    assert loaded.runtime == request.param  # no GPU in the tests' machines
    yield loaded


def _copy_model(source: Path, folder: Path) -> Path:
    target = folder / source.name
    shutil.copy(source, target)
    shutil.copy(metadata_path(source), metadata_path(target))
    return target


# 70: more faces than one TFLite call takes (MAX_BATCH), so they go in two chunks.
@pytest.mark.parametrize("batch", [1, 3, 17, 70])
def test_compiled_path_matches_plain_call(
    classifier: EmotionClassifier, tiny_model_path: Path, batch: int
) -> None:
    from shared.keras_layers import load_model

    faces = np.random.default_rng(batch).integers(0, 256, (batch, 48, 48, 1), dtype=np.uint8)
    expected = np.asarray(load_model(tiny_model_path)(faces, training=False))
    probabilities = classifier.classify(faces)
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (batch, len(EMOTIONS))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2, 5, 16])
def test_compiled_path_matches_keras_on_real_faces(
    classifier: EmotionClassifier, tiny_model_path: Path, astronaut_bgr: np.ndarray, batch: int
) -> None:
    """The path batching uses (one call, any batch size) equals the plain model on real crops."""
    from shared.keras_layers import load_model

    x, y, w, h = ASTRONAUT_FACE_XYWH
    # The hand-labelled face, shifted and grown a little, as a detector's boxes would be.
    boxes = [(x + 3 * (i % 4) - 4, y + 2 * (i // 4) - 3, w + i, h + i) for i in range(batch)]
    faces = np.stack([face_gray(astronaut_bgr, box, (48, 48), 0.1) for box in boxes])[..., None]
    expected = np.asarray(load_model(tiny_model_path)(faces, training=False))
    probabilities = classifier.classify(faces)
    assert probabilities.shape == (batch, len(EMOTIONS))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    # Each face's row does not depend on the other faces in the batch.
    np.testing.assert_allclose(classifier.classify(faces[-1:]), probabilities[-1:], atol=1e-4)


def test_no_faces_gives_an_empty_batch_without_tensorflow(classifier: EmotionClassifier) -> None:
    def fail(_: object) -> None:
        raise AssertionError("TensorFlow was called for zero faces")

    original = classifier._predict
    classifier._predict = fail
    try:
        probabilities = classifier.classify(np.zeros((0, 48, 48, 1), np.uint8))
    finally:
        classifier._predict = original
    assert probabilities.shape == (0, len(EMOTIONS))
    assert probabilities.dtype == np.float32


@pytest.mark.parametrize(
    "faces",
    [np.zeros((2, 48, 48, 1), np.float32), np.zeros((2, 48, 48), np.uint8)],
    ids=["float", "no-channel"],
)
def test_wrong_input_is_refused(classifier: EmotionClassifier, faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 48, 48, 1\)"):
        classifier.classify(faces)


def test_version_comes_from_the_metadata(
    classifier: EmotionClassifier, tiny_model_path: Path
) -> None:
    assert classifier.version == read_metadata(tiny_model_path).version
    assert classifier.version.startswith("tiny-")
    assert classifier.input_hw == (48, 48)


def test_label_order_mismatch_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    meta = json.loads(metadata_path(model).read_text())
    meta["labels"] = sorted(EMOTIONS)
    metadata_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="expected label order"):
        EmotionClassifier.load(model)


def test_hash_mismatch_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    with model.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        EmotionClassifier.load(model)


def test_corrupt_model_file_is_a_clear_error(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    model.write_bytes(b"this is not a zip archive")
    meta = json.loads(metadata_path(model).read_text())
    meta["content_sha256"] = sha256_file(model)  # the hash matches; the content is garbage
    metadata_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=rf"cannot load model file {model}"):
        EmotionClassifier.load(model)


def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "emotion_model.keras"
    with pytest.raises(ModelFileError, match=rf"model file not found: {missing}"):
        EmotionClassifier.load(missing)


def test_model_shape_must_match_the_metadata(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    meta = json.loads(metadata_path(model).read_text())
    meta["input_hw"] = [64, 64]
    metadata_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="differs from its metadata"):
        EmotionClassifier.load(model)
