"""The emotion CNNs by name, and the served model built around a trained one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from shared.keras_layers import LogitAdjustment
from shared.labels import NUM_EMOTIONS

Builder = Callable[[tuple[int, int], int], keras.Model]


def augmentation(
    crop_hw: tuple[int, int], erasing: float = 0.0, geometric: bool = True
) -> list[keras.layers.Layer]:
    """Training-only jitter, then the fixed centre crop that training and serving share, then
    (optionally) random erasing of a patch in half of the faces.

    The random layers are identities at inference, so serving sees exactly the centre crop
    (a random crop in training, because the shift comes before it). ``geometric=False`` keeps
    only the mirror, for faces already jittered outside the model (``training.augment``).
    """
    layers: list[keras.layers.Layer] = [keras.layers.RandomFlip("horizontal")]
    if geometric:
        layers += [
            keras.layers.RandomRotation(0.04, fill_mode="reflect"),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect"),
            keras.layers.RandomTranslation(0.09, 0.09, fill_mode="reflect"),
            keras.layers.RandomContrast(0.2),
        ]
    layers.append(keras.layers.CenterCrop(*crop_hw))
    if erasing:
        # A probability range (p, p) erases exactly a share p of the faces; a single float
        # would draw that share from [0, p].
        layers.append(
            keras.layers.RandomErasing(
                factor=(erasing, erasing), scale=(0.02, 0.25), value_range=(0.0, 1.0)
            )
        )
    return layers


def build_vgg(
    input_hw: tuple[int, int],
    num_classes: int,
    *,
    widths: Sequence[int] = (48, 96, 192, 384),
    crop_hw: tuple[int, int] = (40, 40),
    dropout: float = 0.3,
    erasing: float = 0.0,
    geometric: bool = True,
    name: str = "vgg",
) -> keras.Model:
    """Our default: four VGG blocks (two 3x3 conv + BN + ReLU, max-pool), global-average head."""
    inputs = keras.Input((*input_hw, 1), dtype="uint8", name="face_gray")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for layer in augmentation(crop_hw, erasing, geometric):
        x = layer(x)
    for width in widths:
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_vgg_small(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """A narrower VGG (0.69x the default's parameters and compute) trained with random erasing:
    the second member of the shipped ensemble, small enough to fit beside the default in the
    20 MB model file, and regularised differently so that the two err differently."""
    return build_vgg(
        input_hw, num_classes, widths=(40, 80, 160, 320), erasing=0.5, name="vgg_small"
    )


def build_seed(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """The seed tutorials' network: four convolutions and a 1024-unit dense layer (baseline)."""
    inputs = keras.Input((*input_hw, 1), dtype="uint8", name="face_gray")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Conv2D(128, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(1024, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="seed")


def build_vgg_erasing(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """The default network trained with random erasing as well (it over-fits without)."""
    return build_vgg(input_hw, num_classes, erasing=0.5, name="vgg_erasing")


def build_vgg_student(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """The default network as a distillation student (``training.campaign``): its faces come
    jittered from outside (framing and camera), so inside it only mirrors them and erases."""
    return build_vgg(input_hw, num_classes, erasing=0.25, geometric=False, name="vgg_student")


def build_vgg_student_lean(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """The student with less regularisation inside (no random erasing, dropout 0.1): the same
    weights as ``vgg-student`` layer for layer, so a warm restart may switch to it
    (``training.campaign --restart-arch``) when the student fits its jittered faces no better
    than PublicTest (docs/training.md)."""
    return build_vgg(
        input_hw,
        num_classes,
        erasing=0.0,
        dropout=0.1,
        geometric=False,
        name="vgg_student_lean",
    )


def build_vgg_student_wide(input_hw: tuple[int, int], num_classes: int) -> keras.Model:
    """The lean student with its last two blocks wider (256 and 512 channels instead of 192
    and 384): 1.4x the compute a face, 4.5 M parameters instead of 2.6 M. A warm restart may
    carry the student's weights into it so that it starts where the student is
    (``training.widen``)."""
    return build_vgg(
        input_hw,
        num_classes,
        widths=(48, 96, 256, 512),
        erasing=0.0,
        dropout=0.1,
        geometric=False,
        name="vgg_student_wide",
    )


ARCHITECTURES: dict[str, Builder] = {
    "vgg-student": build_vgg_student,
    "vgg-student-lean": build_vgg_student_lean,
    "vgg-student-wide": build_vgg_student_wide,
    "vgg": build_vgg,
    "vgg-erasing": build_vgg_erasing,
    "vgg-small": build_vgg_small,
    "seed": build_seed,
}


def build_model(
    arch: str, input_hw: tuple[int, int], num_classes: int = NUM_EMOTIONS
) -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](input_hw, num_classes)


def served_model(trained: Sequence[keras.Model], logit_bias: Sequence[float]) -> keras.Model:
    """Wrap trained networks for serving: probabilities averaged over the networks (an
    ensemble when there are several), then the prior adjustment.

    Takes and returns exactly what one trained network does (uint8 faces in, probabilities
    out), so the worker needs no knowledge of any of it; it sees each face as given (the
    worker chooses whether to average it with its mirror image, ``stages.views``).
    """
    inputs = keras.Input(trained[0].input_shape[1:], dtype="uint8", name="face_gray")
    outputs: list[Any] = []
    for index, net in enumerate(trained):
        # Nested models need distinct names inside one model file.
        member = keras.Model(net.input, net.output, name=f"{net.name}_{index}")
        outputs.append(member(inputs))
    probabilities = keras.layers.Average()(outputs) if len(outputs) > 1 else outputs[0]
    adjusted = LogitAdjustment(list(logit_bias), name="logit_adjustment")(probabilities)
    names = "_".join(net.name for net in trained)
    return keras.Model(inputs, adjusted, name=f"served_{names}")
