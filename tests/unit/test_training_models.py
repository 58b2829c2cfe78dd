"""The campaign's networks: a warm restart may move the weights into another network whose
weighted layers match, as wide or wider, and the function they compute stays the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shared.labels import NUM_EMOTIONS
from training.models import ARCHITECTURES, build_model
from training.widen import carry_weights, pick_channels, widen_conv, widen_dense

INPUT_HW = (48, 48)
FACES = np.random.default_rng(3).integers(0, 256, (6, *INPUT_HW, 1), dtype=np.uint8)


def _trained_like(arch: str) -> Any:
    """A network with random weights everywhere, BatchNorm's running statistics included (a
    fresh one's are the identity, which would hide a channel carried to the wrong place)."""
    import keras

    keras.utils.set_random_seed(3)
    model = build_model(arch, INPUT_HW)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0.0, 0.2, beta.shape),
                    rng.normal(0.0, 0.2, mean.shape),
                    rng.uniform(0.5, 2.0, variance.shape),
                ]
            )
    return model


def _answers(model: Any) -> np.ndarray:
    return np.asarray(model(FACES, training=False))


def test_the_lean_student_computes_what_the_student_did_with_its_weights() -> None:
    student = _trained_like("vgg-student")
    lean = build_model("vgg-student-lean", INPUT_HW)
    before = _answers(student)
    assert before.shape == (len(FACES), NUM_EMOTIONS)
    assert not np.allclose(_answers(lean), before, atol=1e-3)
    carry_weights(student, lean, "the student")
    # Erasing and dropout are identities at inference: the same answers, not just similar ones.
    np.testing.assert_allclose(_answers(lean), before, atol=1e-5)
    kinds = {type(layer).__name__ for layer in lean.layers}
    assert "RandomErasing" not in kinds
    assert [layer.rate for layer in lean.layers if type(layer).__name__ == "Dropout"] == [0.1]


def test_the_wide_student_starts_where_the_student_is() -> None:
    student = _trained_like("vgg-student")
    before = _answers(student)
    exact = build_model("vgg-student-wide", INPUT_HW)
    carry_weights(student, exact, "the student", noise=0.0)
    np.testing.assert_allclose(_answers(exact), before, atol=1e-4)
    # With the noise that lets the copies learn apart, nearly the same answers.
    wide = build_model("vgg-student-wide", INPUT_HW)
    carry_weights(student, wide, "the student")
    np.testing.assert_allclose(_answers(wide), before, atol=0.02)
    last = [layer for layer in wide.layers if type(layer).__name__ == "Conv2D"][-1]
    kernel = np.asarray(last.get_weights()[0])
    assert kernel.shape[-1] == 512
    copies = kernel[..., 384:]
    assert not any(np.allclose(copies[..., 0], kernel[..., c]) for c in range(384))


def test_a_copied_channel_shares_what_the_next_layer_reads_from_it() -> None:
    rng = np.random.default_rng(0)
    picks = pick_channels(3, 5, rng)
    assert picks[:3].tolist() == [0, 1, 2] and set(picks[3:].tolist()) <= {0, 1, 2}
    kernel = rng.normal(size=(3, 2)).astype(np.float32)
    wide = widen_dense(kernel, picks)
    features = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(features[:, picks] @ wide, features @ kernel, atol=1e-5)
    conv = rng.normal(size=(1, 1, 3, 2)).astype(np.float32)
    out = pick_channels(2, 4, rng)
    wide_conv = widen_conv(conv, picks, out, rng)
    np.testing.assert_allclose(
        features[:, picks] @ wide_conv[0, 0], (features @ conv[0, 0])[:, out], atol=1e-5
    )


def test_weights_that_do_not_fit_are_refused_by_name() -> None:
    student = build_model("vgg-student", INPUT_HW)
    with pytest.raises(SystemExit, match=r"epoch 7: layer .* into vgg_small: cannot narrow 48"):
        carry_weights(student, build_model("vgg-small", INPUT_HW), "epoch 7")
    with pytest.raises(SystemExit, match="epoch 7: its layers are not those of seed"):
        carry_weights(student, build_model("seed", INPUT_HW), "epoch 7")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_network_is_named_for_its_architecture(arch: str) -> None:
    # training.train's export names a checkpoint's architecture by its network's name.
    assert build_model(arch, INPUT_HW).name.replace("_", "-") == arch
