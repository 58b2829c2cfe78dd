"""Weights carried from one network into another of the same layers, as wide or wider.

A warm restart may move a trained network's weights into a network with other layers around
them (less regularisation) or with more channels in some convolutions. Wider layers start as
copies of the trained ones (Net2WiderNet, Chen, Goodfellow and Shlens, ICLR 2016): each new
channel repeats a channel of the trained layer, chosen at random, and the next layer divides
what it reads from each repeated channel by the number of its copies, so the wider network
computes what the trained one did. A little noise on the copies' incoming weights lets them
learn apart (identical copies would get identical gradients for ever).

The maths is numpy on the weight arrays (``widen_conv``, ``widen_dense``, ``pick_channels``);
``carry_weights`` walks two Keras models' weighted layers (Conv2D, BatchNormalization, Dense,
in the same order) and sets them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["carry_weights", "pick_channels", "widen_conv", "widen_dense"]

Array = npt.NDArray[np.float32]
Picks = npt.NDArray[np.int64]


def pick_channels(have: int, want: int, rng: np.random.Generator) -> Picks:
    """Which trained channel each of ``want`` channels copies: every one of ``have`` first, in
    order, then random ones."""
    if want < have:
        raise ValueError(f"cannot narrow {have} channels to {want}")
    return np.concatenate([np.arange(have), rng.integers(0, have, want - have)]).astype(np.int64)


def _share(picks: Picks, have: int) -> Array:
    """Per channel of ``picks``: 1 / the number of copies of the channel it copies."""
    return (1.0 / np.bincount(picks, minlength=have)[picks]).astype(np.float32)


def widen_conv(
    kernel: Array,
    in_picks: Picks,
    out_picks: Picks,
    rng: np.random.Generator,
    noise: float = 0.0,
) -> Array:
    """A (kh, kw, in, out) kernel reading ``in_picks``' channels and writing ``out_picks``'.

    Each input channel's weights are divided by its copies, so that the sum over the copies
    is the trained weight; new output channels get noise of ``noise`` times the kernel's
    spread."""
    have_in, have_out = kernel.shape[2], kernel.shape[3]
    wide = kernel[:, :, in_picks, :] * _share(in_picks, have_in)[None, None, :, None]
    wide = np.array(wide[:, :, :, out_picks], np.float32)
    new = out_picks.size - have_out
    if noise and new:
        scale = noise * float(np.std(kernel))
        wide[:, :, :, have_out:] += rng.normal(0.0, scale, wide[:, :, :, have_out:].shape)
    return wide


def widen_dense(kernel: Array, in_picks: Picks) -> Array:
    """An (in, out) kernel reading ``in_picks``' features, each divided by its copies."""
    return np.asarray(kernel[in_picks, :] * _share(in_picks, kernel.shape[0])[:, None], np.float32)


def carry_weights(
    source: Any, target: Any, what: str, *, seed: int = 0, noise: float = 0.01
) -> None:
    """Set ``target``'s weights from ``source``'s, weighted layer for weighted layer in order.

    Layers without weights (dropout, erasing, the mirror) may differ; the weighted ones
    (Conv2D, BatchNormalization, Dense) must be of the same kinds in the same order, each
    convolution as wide or wider, the output as wide. Where a layer is as wide, its weights are
    copied as they are. Raises SystemExit naming ``what`` where the layers do not match.
    """
    from_layers = [layer for layer in source.layers if layer.weights]
    to_layers = [layer for layer in target.layers if layer.weights]
    kinds = [type(layer).__name__ for layer in from_layers]
    if kinds != [type(layer).__name__ for layer in to_layers]:
        raise SystemExit(f"{what}: its layers are not those of {target.name}")
    rng = np.random.default_rng(seed)
    picks: Picks | None = None  # the channels the last convolution wrote
    for src, dst in zip(from_layers, to_layers, strict=True):
        weights = [np.asarray(w, np.float32) for w in src.get_weights()]
        shapes = [tuple(w.shape) for w in dst.get_weights()]
        kind = type(src).__name__
        try:
            if kind == "Conv2D":
                kernel = weights[0]
                in_picks = np.arange(kernel.shape[2]) if picks is None else picks
                picks = pick_channels(kernel.shape[3], shapes[0][3], rng)
                new = [widen_conv(kernel, in_picks, picks, rng, noise)]
                new += [bias[picks] for bias in weights[1:]]
            elif kind == "BatchNormalization" and picks is not None:
                new = [w[picks] for w in weights]
            elif kind == "Dense":
                in_picks = np.arange(weights[0].shape[0]) if picks is None else picks
                new = [widen_dense(weights[0], in_picks), *weights[1:]]
                picks = None
            else:
                raise ValueError(f"cannot carry a {kind} here")
        except ValueError as error:
            raise SystemExit(f"{what}: layer {src.name} into {target.name}: {error}") from error
        if [w.shape for w in new] != shapes:
            raise SystemExit(
                f"{what}: layer {src.name} into {target.name}: "
                f"{[w.shape for w in new]} do not fit {shapes}"
            )
        dst.set_weights(new)
