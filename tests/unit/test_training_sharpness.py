"""Sharpness-aware steps: the gradient taken uphill, applied where the weights were."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

X = np.array([[1.0, 2.0], [0.5, -1.0], [-1.5, 0.5]], np.float32)
Y = np.array([[1.0], [0.0], [2.0]], np.float32)
W = np.array([[0.3], [-0.2]], np.float32)
LR, RHO = 0.1, 0.05


def _network() -> Any:
    import keras

    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    network.layers[0].set_weights([W])
    network.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    return network


def _gradient(w: np.ndarray) -> np.ndarray:
    """The gradient of the mean squared error of X @ w against Y."""
    return np.asarray(2 * X.T @ (X @ w - Y) / len(X))


def test_a_step_applies_the_gradient_from_uphill_to_the_weights_where_they_were() -> None:
    from training.sharpness import sharpness_aware

    network = _network()
    sharpness_aware(network, RHO).fit(X, Y, batch_size=len(X), epochs=1, verbose=0)
    gradient = _gradient(W)
    uphill = W + RHO * gradient / np.linalg.norm(gradient)
    expected = W - LR * _gradient(uphill)
    np.testing.assert_allclose(network.layers[0].get_weights()[0], expected, rtol=1e-5)
    # Not the plain step: the two differ where the loss curves.
    assert not np.allclose(expected, W - LR * gradient, rtol=1e-3)


def test_the_network_keeps_its_optimizer_state_and_answers_as_trained() -> None:
    from training.sharpness import sharpness_aware

    network = _network()
    wrapper = sharpness_aware(network, RHO)
    history = wrapper.fit(X, Y, batch_size=1, epochs=2, verbose=0).history
    assert set(history) == {"loss", "accuracy"} and len(history["loss"]) == 2
    assert network.optimizer is wrapper.optimizer
    assert int(network.optimizer.iterations) == 2 * len(X)
    np.testing.assert_allclose(wrapper.predict(X, verbose=0), network.predict(X, verbose=0))


def test_a_radius_of_zero_is_refused() -> None:
    from training.sharpness import SharpnessAware

    with pytest.raises(ValueError, match="rho must be above 0"):
        SharpnessAware(_network(), 0.0)


def test_another_backend_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    from training.sharpness import sharpness_aware

    network = _network()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(SystemExit, match="need Keras on TensorFlow; this one runs on jax"):
        sharpness_aware(network, RHO)


def test_the_radius_of_a_restart_holds_until_a_later_restart_gives_another() -> None:
    from training.campaign import CampaignConfig, Restart
    from training.train import TrainConfig

    restarts = (
        Restart(epoch=60, epochs=20, learning_rate=0.005, sam_rho=0.05),
        Restart(epoch=80, epochs=20, learning_rate=0.002),  # says nothing: 0.05 holds
        Restart(epoch=100, epochs=20, learning_rate=0.002, sam_rho=0.0),
    )
    config = CampaignConfig(TrainConfig(), "teacher.keras", 0.6, "", restarts)
    assert [config.sam_rho_at(e) for e in (0, 59, 60, 79, 80, 99, 100)] == [
        0.0,
        0.0,
        0.05,
        0.05,
        0.05,
        0.05,
        0.0,
    ]
