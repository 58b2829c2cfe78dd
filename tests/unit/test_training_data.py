"""FER2013 loading in both forms, and the errors users see on broken data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.labels import EMOTIONS
from tests.fer_tiny import write_fer_csv, write_fer_folder
from training.data import (
    DatasetError,
    Examples,
    class_weights,
    load_split,
    stratified_holdout,
)


def _sorted(examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((examples.images.reshape(len(examples), -1).sum(axis=1), examples.labels))
    return examples.images[order], examples.labels[order]


@pytest.mark.parametrize("split", ["train", "test"])
def test_folder_and_csv_give_the_same_arrays(tmp_path: Path, split: str) -> None:
    folder = load_split(write_fer_folder(tmp_path / "fer"), split)  # type: ignore[arg-type]
    table = load_split(write_fer_csv(tmp_path / "fer2013.csv"), split)  # type: ignore[arg-type]
    assert folder.images.shape == (len(EMOTIONS) * 4, 48, 48, 1)
    assert folder.images.dtype == np.uint8
    for a, b in zip(_sorted(folder), _sorted(table), strict=True):
        np.testing.assert_array_equal(a, b)


def test_labels_follow_fer2013_order_not_folder_order(tmp_path: Path) -> None:
    examples = load_split(write_fer_folder(tmp_path), "train")
    # Class brightness encodes the label index in the tiny set: 30 + 30 * index.
    for index in range(len(EMOTIONS)):
        assert abs(examples.images[examples.labels == index].mean() - (30 + 30 * index)) < 5


def test_missing_class_folder_names_the_path(tmp_path: Path) -> None:
    root = write_fer_folder(tmp_path)
    for image in (root / "train" / "disgust").iterdir():
        image.unlink()
    (root / "train" / "disgust").rmdir()
    with pytest.raises(DatasetError, match=r"class folder missing: .*train/disgust"):
        load_split(root, "train")


def test_corrupt_image_names_the_path(tmp_path: Path) -> None:
    root = write_fer_folder(tmp_path)
    broken = root / "train" / "fear" / "Training_broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DatasetError, match=r"cannot decode image: .*Training_broken\.png"):
        load_split(root, "train")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("9,1 2 3,Training", "emotion must be"),
        ("1,1 2 3,Training", "expected 2304 values"),
        ("1," + " ".join(["300"] * 2304) + ",Training", "expected 2304 values in 0..255"),
    ],
)
def test_bad_csv_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + row + "\n")
    with pytest.raises(DatasetError, match=rf"fer2013\.csv:2: {message}"):
        load_split(path, "train")


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="data not found"):
        load_split(tmp_path / "nowhere", "train")


def test_holdout_is_stratified_and_disjoint(tmp_path: Path) -> None:
    examples = load_split(write_fer_folder(tmp_path, per_class=10), "train")
    rest, tune = stratified_holdout(examples, 0.2, seed=3)
    assert len(rest) + len(tune) == len(examples)
    assert list(tune.class_counts()) == [2] * len(EMOTIONS)
    # Each face keeps its file name (what FER+ votes are matched by), image for image.
    assert examples.names[0] == "angry/Training_00000.png"
    assert sorted(rest.names + tune.names) == sorted(examples.names)
    by_name = dict(zip(examples.names, examples.images, strict=True))
    for name, image in zip(tune.names, tune.images, strict=True):
        np.testing.assert_array_equal(by_name[name], image)


def test_class_weights_favour_rare_classes() -> None:
    counts = np.array([4000, 400, 4000, 7000, 5000, 3000, 5000])
    weights = class_weights(counts, power=0.5)
    assert weights[1] == max(weights.values())
    assert np.average(list(weights.values()), weights=counts) == pytest.approx(1.0)
    assert list(class_weights(counts, power=0.0).values()) == pytest.approx([1.0] * 7)
