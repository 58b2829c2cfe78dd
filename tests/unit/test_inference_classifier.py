"""The classifier on a tiny real model file, on LiteRT (.tflite) and TensorFlow (.keras): same
probabilities as Keras, batch shapes, refused model files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.labels import EMOTIONS
from shared.model_file import (
    ModelFileError,
    metadata_path,
    read_metadata,
    sha256_file,
    tflite_path,
)
from stages.classifier import Classifier, load_classifier
from stages.framing import Framing, model_crop
from tests.conftest import ASTRONAUT_FACE_XYWH, copy_model

RUNTIMES = ["litert", "tensorflow"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=RUNTIMES)
def classifier(tiny_model_path: Path, request: pytest.FixtureRequest) -> Iterator[Classifier]:
    loaded = load_classifier(tiny_model_path, request.param, threads=1)
    assert getattr(loaded, "runtime", None) == request.param
    yield loaded


def _copy_model(source: Path, folder: Path, **metadata: object) -> Path:
    """A copy of the model in ``folder``, its metadata fields changed as ``metadata`` says."""
    model = copy_model(source, folder / source.name)
    if metadata:
        meta = json.loads(metadata_path(model).read_text())
        metadata_path(model).write_text(json.dumps({**meta, **metadata}))
    return model


def _both_views(model: Any, faces: np.ndarray) -> np.ndarray:
    """What the worker answers for faces it sees once: each averaged with its mirror image."""
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    return (np.asarray(model(faces, training=False)) + np.asarray(model(mirrored))) / 2


def test_each_face_is_seen_as_its_view_says(classifier: Classifier, tiny_model_path: Path) -> None:
    from shared.keras_layers import load_model

    model = load_model(tiny_model_path)
    faces = np.random.default_rng(3).integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)
    plain = np.asarray(model(faces, training=False))
    mirrored = np.asarray(model(np.ascontiguousarray(faces[:, :, ::-1]), training=False))
    got = classifier.classify(faces, ["face", "mirror", "both"])
    np.testing.assert_allclose(got[0], plain[0], atol=1e-5)
    np.testing.assert_allclose(got[1], mirrored[1], atol=1e-5)
    np.testing.assert_allclose(got[2], (plain[2] + mirrored[2]) / 2, atol=1e-5)
    assert not np.allclose(plain, mirrored, atol=1e-4), "the views must differ for this test"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_model_that_mirrors_inside_sees_each_face_once(
    tiny_model_path: Path, tmp_path: Path, runtime: str
) -> None:
    """Model files written before the worker chose the views average the mirror themselves."""
    from shared.keras_layers import load_model

    model = _copy_model(tiny_model_path, tmp_path, mirror="inside")
    classifier = load_classifier(model, runtime, threads=1)  # type: ignore[arg-type]
    faces = np.random.default_rng(4).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)
    expected = np.asarray(load_model(model)(faces, training=False))
    for views in (None, ["both", "both"], ["mirror", "face"]):
        np.testing.assert_allclose(classifier.classify(faces, views), expected, atol=1e-5)


def _read_file(model: Path, runtime: str) -> Path:
    """The file ``runtime`` loads the model from."""
    return tflite_path(model) if runtime == "litert" else model


def test_a_cpu_machine_runs_litert_and_never_imports_tensorflow(tiny_model_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path;"
        "from stages.classifier import load_classifier;"
        f"c = load_classifier(Path({str(tiny_model_path)!r}));"
        "print(c.runtime, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["litert", "False", "False"]


# 70: more faces than one TFLite call takes (MAX_BATCH), so they go in two chunks.
@pytest.mark.parametrize("batch", [1, 3, 17, 70])
def test_compiled_path_matches_plain_call(
    classifier: Classifier, tiny_model_path: Path, batch: int
) -> None:
    from shared.keras_layers import load_model

    faces = np.random.default_rng(batch).integers(0, 256, (batch, 48, 48, 1), dtype=np.uint8)
    expected = _both_views(load_model(tiny_model_path), faces)
    probabilities = classifier.classify(faces)
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (batch, len(EMOTIONS))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2, 5, 16])
def test_compiled_path_matches_keras_on_real_faces(
    classifier: Classifier, tiny_model_path: Path, astronaut_bgr: np.ndarray, batch: int
) -> None:
    """The path batching uses (one call, any batch size) equals the plain model on real crops."""
    from shared.keras_layers import load_model

    x, y, w, h = ASTRONAUT_FACE_XYWH
    # The hand-labelled face, shifted and grown a little, as a detector's boxes would be.
    boxes = [(x + 3 * (i % 4) - 4, y + 2 * (i // 4) - 3, w + i, h + i) for i in range(batch)]
    framing = Framing().with_margin(0.1)
    faces = np.stack([model_crop(astronaut_bgr, box, framing, (48, 48)) for box in boxes])[
        ..., None
    ]
    expected = _both_views(load_model(tiny_model_path), faces)
    probabilities = classifier.classify(faces)
    assert probabilities.shape == (batch, len(EMOTIONS))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    # Each face's row does not depend on the other faces in the batch.
    np.testing.assert_allclose(classifier.classify(faces[-1:]), probabilities[-1:], atol=1e-4)


def test_no_faces_gives_an_empty_batch_without_running_the_model(
    classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_: object) -> None:
        raise AssertionError("the model was run for zero faces")

    runner = "_run_chunk" if getattr(classifier, "runtime", "") == "litert" else "_predict"
    monkeypatch.setattr(classifier, runner, fail)
    probabilities = classifier.classify(np.zeros((0, 48, 48, 1), np.uint8))
    assert probabilities.shape == (0, len(EMOTIONS))
    assert probabilities.dtype == np.float32


@pytest.mark.parametrize(
    "faces",
    [np.zeros((2, 48, 48, 1), np.float32), np.zeros((2, 48, 48), np.uint8)],
    ids=["float", "no-channel"],
)
def test_wrong_input_is_refused(classifier: Classifier, faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 48, 48, 1\)"):
        classifier.classify(faces)


def test_version_comes_from_the_metadata(classifier: Classifier, tiny_model_path: Path) -> None:
    assert classifier.version == read_metadata(tiny_model_path).version
    assert classifier.version.startswith("tiny-")
    assert classifier.input_hw == (48, 48)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_label_order_mismatch_is_refused(
    tiny_model_path: Path, tmp_path: Path, runtime: str
) -> None:
    model = _copy_model(tiny_model_path, tmp_path, labels=sorted(EMOTIONS))
    with pytest.raises(ModelFileError, match="expected label order"):
        load_classifier(model, runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_hash_mismatch_is_refused(tiny_model_path: Path, tmp_path: Path, runtime: str) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    with _read_file(model, runtime).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        load_classifier(model, runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_corrupt_model_file_is_a_clear_error(
    tiny_model_path: Path, tmp_path: Path, runtime: str
) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    garbage = _read_file(model, runtime)
    garbage.write_bytes(b"this is not a model")
    meta = json.loads(metadata_path(model).read_text())
    # The hash matches; the content is garbage.
    meta["tflite_sha256" if runtime == "litert" else "content_sha256"] = sha256_file(garbage)
    metadata_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=rf"cannot load model file {garbage}"):
        load_classifier(model, runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_missing_model_file_names_the_path(tmp_path: Path, runtime: str) -> None:
    missing = tmp_path / "emotion_model.keras"
    with pytest.raises(ModelFileError, match=rf"model file not found: {missing}"):
        load_classifier(missing, runtime)


def test_a_keras_file_without_its_tflite_tells_how_to_write_one(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    model = _copy_model(tiny_model_path, tmp_path)
    tflite_path(model).unlink()
    with pytest.raises(
        ModelFileError, match=rf"model file not found: {tflite_path(model)}.*training\.export"
    ):
        load_classifier(model, "litert")


def test_metadata_without_a_tflite_tells_how_to_write_one(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    model = _copy_model(tiny_model_path, tmp_path, tflite_sha256=None)
    with pytest.raises(ModelFileError, match=r"names no \.tflite file.*training\.export"):
        load_classifier(model, "litert")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_model_shape_must_match_the_metadata(
    tiny_model_path: Path, tmp_path: Path, runtime: str
) -> None:
    model = _copy_model(tiny_model_path, tmp_path, input_hw=[64, 64])
    with pytest.raises(ModelFileError, match="differs from its metadata"):
        load_classifier(model, runtime)


def test_a_face_gets_the_same_row_whatever_the_batch_sizes_before(
    classifier: Classifier,
) -> None:
    """One interpreter is resized as the number of faces changes: growing, shrinking and
    repeating sizes leave every row as the face alone gives it."""
    faces = np.random.default_rng(9).integers(0, 256, (9, 48, 48, 1), dtype=np.uint8)
    alone = np.concatenate([classifier.classify(faces[i : i + 1]) for i in range(len(faces))])
    for count in (3, 9, 2, 2, 5, 1, 9):
        np.testing.assert_allclose(classifier.classify(faces[:count]), alone[:count], atol=1e-5)
