"""The model-file contract: validated metadata, content hash, atomic replacement."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from shared.labels import EMOTIONS
from shared.model_file import (
    ModelFileError,
    deflate_archive,
    metadata_path,
    read_metadata,
    write_model_files,
)

METADATA = {
    "labels": list(EMOTIONS),
    "input_hw": [48, 48],
    "preprocessing": "inside the model",
    "architecture": "test",
    "dataset": "tiny",
    "train_split": "train",
    "validation_split": "test",
    "metrics": {"accuracy": 0.5},
    "epochs": 1,
    "training_seconds": 1.0,
    "created_at": "2026-01-01T00:00:00+00:00",
}


def _write(path: Path, content: bytes) -> None:
    write_model_files(path, lambda tmp: tmp.write_bytes(content), METADATA)


def test_round_trip_keeps_label_order_and_hash(tmp_path: Path) -> None:
    model = tmp_path / "emotion_model.keras"
    _write(model, b"model bytes")
    metadata = read_metadata(model)
    assert metadata.labels == EMOTIONS
    assert metadata.version.startswith("test-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "emotion_model.json",
        "emotion_model.keras",
    ]


def test_wrong_label_order_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    _write(model, b"x")
    meta = json.loads(metadata_path(model).read_text())
    meta["labels"] = sorted(EMOTIONS)
    metadata_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="expected label order"):
        read_metadata(model)


def test_replaced_model_bytes_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    _write(model, b"x")
    model.write_bytes(b"half a model")
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        read_metadata(model)


@pytest.mark.parametrize("missing", ["model", "metadata"])
def test_missing_files_are_named(tmp_path: Path, missing: str) -> None:
    model = tmp_path / "m.keras"
    _write(model, b"x")
    victim = model if missing == "model" else metadata_path(model)
    victim.unlink()
    with pytest.raises(ModelFileError, match=str(victim.name)):
        read_metadata(model)


def test_interrupted_write_leaves_the_old_model_intact(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    _write(model, b"old model")
    before = read_metadata(model)

    def crash_midway(tmp: Path) -> None:
        tmp.write_bytes(b"new mod")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_model_files(model, crash_midway, METADATA)
    assert model.read_bytes() == b"old model"
    assert read_metadata(model) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]


def test_deflate_archive_keeps_every_entry_and_shrinks_the_file(tmp_path: Path) -> None:
    archive = tmp_path / "model.keras"
    entries = {"config.json": b'{"a": 1}' * 100, "model.weights.h5": bytes(range(256)) * 400}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries.items():
            target.writestr(name, data)
    stored_size = archive.stat().st_size

    deflate_archive(archive)

    with zipfile.ZipFile(archive) as source:
        assert {entry.filename: source.read(entry) for entry in source.infolist()} == entries
        assert {entry.compress_type for entry in source.infolist()} == {zipfile.ZIP_DEFLATED}
    assert archive.stat().st_size < stored_size
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]
