"""The campaign's networks: a warm restart may move the weights into another network whose
weighted layers match, and the function they compute stays the same."""

from __future__ import annotations

import numpy as np
import pytest

from shared.labels import NUM_EMOTIONS
from training.campaign import carry_weights
from training.models import ARCHITECTURES, build_model

INPUT_HW = (48, 48)


def test_the_lean_student_computes_what_the_student_did_with_its_weights() -> None:
    import keras

    keras.utils.set_random_seed(3)
    student = build_model("vgg-student", INPUT_HW)
    lean = build_model("vgg-student-lean", INPUT_HW)
    faces = np.random.default_rng(3).integers(0, 256, (4, *INPUT_HW, 1), dtype=np.uint8)
    before = np.asarray(student(faces, training=False))
    assert not np.allclose(np.asarray(lean(faces, training=False)), before, atol=1e-3)
    carry_weights(student, lean, "the student")
    # Erasing and dropout are identities at inference: the same answers, not just similar ones.
    np.testing.assert_allclose(np.asarray(lean(faces, training=False)), before, atol=1e-5)
    assert before.shape == (4, NUM_EMOTIONS)
    kinds = {type(layer).__name__ for layer in lean.layers}
    assert "RandomErasing" not in kinds
    assert [layer.rate for layer in lean.layers if type(layer).__name__ == "Dropout"] == [0.1]


def test_weights_of_another_shape_are_refused_by_name() -> None:
    student = build_model("vgg-student", INPUT_HW)
    small = build_model("vgg-small", INPUT_HW)
    with pytest.raises(SystemExit, match="epoch 7: not shaped as vgg_small"):
        carry_weights(student, small, "epoch 7")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_network_is_named_for_its_architecture(arch: str) -> None:
    # training.train's export names a checkpoint's architecture by its network's name.
    assert build_model(arch, INPUT_HW).name.replace("_", "-") == arch
