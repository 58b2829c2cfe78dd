"""FER2013 packed into mosaics and back: the same faces, names, labels and votes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fer_tiny import write_fer_folder, write_ferplus_votes
from training import pack
from training.data import load_split


@pytest.fixture
def fer(tmp_path: Path) -> Path:
    data = write_fer_folder(tmp_path / "fer", per_class=10)
    write_ferplus_votes(data)
    return data


def test_mosaics_hold_every_face_in_order_across_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack, "MOSAIC_COLS", 4)
    monkeypatch.setattr(pack, "MOSAIC_ROWS", 2)
    faces = np.random.default_rng(0).integers(0, 256, (19, 48, 48), dtype=np.uint8)
    images = pack.mosaics(faces)
    # 8 faces a mosaic: two full ones and a third of one row less one face.
    assert [image.shape for image in images] == [(96, 192), (96, 192), (48, 192)]
    np.testing.assert_array_equal(pack.faces_of(images, len(faces)), faces)
    with pytest.raises(ValueError, match="the mosaics hold 20 faces, the index names 21"):
        pack.faces_of(images, 21)


def test_a_lossless_pack_unpacks_to_the_same_splits(fer: Path, tmp_path: Path) -> None:
    packed = tmp_path / "pack"
    assert pack.main(["--data", str(fer), "--out", str(packed)]) == 0
    assert sorted(path.name for path in packed.iterdir()) == [
        "ferplus",
        "index.npz",
        "test-000.webp",
        "train-000.webp",
    ]
    unpacked = tmp_path / "unpacked"
    assert pack.main(["--unpack", str(packed), "--data", str(unpacked)]) == 0
    for split in pack.SPLITS:
        before, after = load_split(fer, split), load_split(unpacked, split)
        np.testing.assert_array_equal(after.images, before.images)
        np.testing.assert_array_equal(after.labels, before.labels)
        assert after.names == before.names
    votes = Path("ferplus") / "train.csv"
    assert (unpacked / votes).read_bytes() == (fer / votes).read_bytes()


def test_train_may_be_packed_as_jpeg_and_test_stays_lossless(fer: Path, tmp_path: Path) -> None:
    packed = tmp_path / "pack"
    pack.pack(fer, packed, train_quality=95)
    assert {path.suffix for path in packed.glob("train-*")} == {".jpg"}
    train, test = pack.read_pack(packed, "train"), pack.read_pack(packed, "test")
    np.testing.assert_array_equal(test.images, load_split(fer, "test").images)
    original = load_split(fer, "train")
    assert train.names == original.names
    difference = np.abs(train.images.astype(int) - original.images.astype(int))
    assert 0 < difference.mean() < 8
