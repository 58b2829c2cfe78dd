"""The model-file contract between training and the workers: metadata, hashing, atomic writes.

A model is files side by side: ``<name>.keras`` (a Keras 3 model taking uint8 grayscale faces
of ``input_hw`` and returning the probabilities in ``labels`` order, all preprocessing inside),
``<name>.tflite`` (the same model converted for LiteRT, which CPU workers run without
TensorFlow) and ``<name>.json`` (``ModelMetadata``). Each is written through a temporary file
and an atomic rename, the metadata last; it carries the SHA-256 of both model files, so a
reader that catches the set between two renames sees a mismatch instead of loading half a model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.labels import EMOTIONS

FORMAT_VERSION: Final = 1

#: How a ``.tflite`` stores its weights. ``int8``: int8 weights, each face's activations
#: quantized on the fly at run time (dynamic range); no calibration data is involved.
TfliteWeights = Literal["float32", "float16", "int8"]


class ModelFileError(Exception):
    """A model file or its metadata is missing, unreadable or breaks the contract."""


class ModelPairMismatchError(ModelFileError):
    """The model file's bytes are not those its metadata names: one of the pair was replaced
    without the other (or a reader caught the pair between its two renames)."""


class ModelMetadata(BaseModel):
    """What a worker needs to know about a model file before it loads it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = FORMAT_VERSION
    labels: tuple[str, ...] = Field(description="Output order of the probabilities.")
    input_hw: tuple[int, int] = Field(description="Face size the model takes, height x width.")
    color: Literal["gray"] = "gray"
    input_dtype: Literal["uint8"] = "uint8"
    preprocessing: str = Field(description="What the model does inside before its first layer.")
    architecture: str
    dataset: str
    train_split: str
    validation_split: str
    metrics: dict[str, float] = Field(default_factory=dict)
    epochs: int = Field(ge=0)
    training_seconds: float = Field(ge=0)
    created_at: str
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tflite_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    tflite_weights: TfliteWeights | None = None
    mirror: Literal["inside", "worker"] = Field(
        default="inside",
        description="inside: the model averages each face with its mirror image itself (files "
        "written before 2026-12-07); worker: the model sees each face as given, and the worker "
        "chooses the views (stages/views.py).",
    )

    @field_validator("labels")
    @classmethod
    def _labels_are_fer2013(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if labels != EMOTIONS:
            raise ValueError(f"expected label order {list(EMOTIONS)}, found {list(labels)}")
        return labels

    @field_validator("input_hw")
    @classmethod
    def _input_size_is_sane(cls, input_hw: tuple[int, int]) -> tuple[int, int]:
        if not all(8 <= side <= 512 for side in input_hw):
            raise ValueError(f"input_hw sides must be within 8..512, found {input_hw}")
        return input_hw

    @property
    def version(self) -> str:
        """Short, stable name of this model's content, stamped on every result."""
        return f"{self.architecture}-{self.content_sha256[:12]}"


def metadata_path(model_path: Path) -> Path:
    """The metadata file that belongs to ``model_path``."""
    return model_path.with_suffix(".json")


def tflite_path(model_path: Path) -> Path:
    """The LiteRT file that belongs to ``model_path``."""
    return model_path.with_suffix(".tflite")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_atomic(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it over ``path``.

    ``suffix`` keeps the temporary name's extension (Keras refuses to save without ``.keras``).
    A crash inside ``write`` leaves ``path`` as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private; a model file is read by workers of other users too.
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def deflate_archive(path: Path) -> None:
    """Rewrite the zip archive at ``path`` (a ``.keras`` file) with every entry deflated.

    Keras stores its entries uncompressed; deflating the weights saves about 8% (an ensemble
    of two networks goes from 21.4 to 19.6 MB) and Keras reads the result unchanged.
    """
    packed = path.with_name(path.name + ".deflating")
    try:
        with (
            zipfile.ZipFile(path) as source,
            zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
        ):
            for entry in source.infolist():
                target.writestr(entry, source.read(entry), zipfile.ZIP_DEFLATED)
        os.replace(packed, path)
    finally:
        packed.unlink(missing_ok=True)


def write_model_files(
    model_path: Path,
    save_model: Callable[[Path], None],
    metadata_without_hash: dict[str, object],
    tflite: tuple[bytes, TfliteWeights] | None = None,
) -> ModelMetadata:
    """Write a model, its LiteRT form (when given, with its weights' type) and its metadata
    atomically, the metadata last; return the metadata as written.

    ``save_model`` writes the model to the path it is given (``model.save``). The metadata gets
    the content hash of exactly the bytes that end up at ``model_path`` and its ``.tflite``.
    """
    digest: dict[str, str] = {}

    def save_and_hash(tmp: Path) -> None:
        save_model(tmp)
        digest["sha256"] = sha256_file(tmp)

    try:
        metadata = ModelMetadata.model_validate(
            {**metadata_without_hash, "content_sha256": "0" * 64}
        )
    except ValidationError as error:
        raise ModelFileError(f"refusing to write invalid metadata: {error}") from error
    write_atomic(model_path, save_and_hash, suffix=model_path.suffix)
    metadata = metadata.model_copy(update={"content_sha256": digest["sha256"]})
    if tflite is not None:
        return write_tflite(model_path, tflite[0], metadata, tflite[1])
    write_metadata(model_path, metadata)
    return metadata


def write_tflite(
    model_path: Path,
    content: bytes,
    metadata: ModelMetadata,
    weights: TfliteWeights,
) -> ModelMetadata:
    """Write the LiteRT form of ``model_path``, then its metadata naming it; return that."""

    def write_content(tmp: Path) -> None:
        tmp.write_bytes(content)

    write_atomic(tflite_path(model_path), write_content, suffix=".tflite")
    updated = metadata.model_copy(
        update={"tflite_sha256": hashlib.sha256(content).hexdigest(), "tflite_weights": weights}
    )
    write_metadata(model_path, updated)
    return updated


def write_metadata(model_path: Path, metadata: ModelMetadata) -> None:
    """Write ``metadata`` atomically beside ``model_path``."""
    text = metadata.model_dump_json(indent=2) + "\n"

    def write_text(tmp: Path) -> None:
        tmp.write_text(text)

    write_atomic(metadata_path(model_path), write_text, suffix=".json")


def read_metadata(model_path: Path) -> ModelMetadata:
    """Read and validate the metadata of ``model_path`` and check it matches the model's bytes.

    Raises ``ModelFileError`` naming the path and what is wrong.
    """
    if not model_path.is_file():
        raise ModelFileError(f"model file not found: {model_path}")
    metadata = _read_metadata_file(model_path)
    _check_hash(model_path, sha256_file(model_path), metadata.content_sha256)
    return metadata


def read_tflite(model_path: Path) -> tuple[ModelMetadata, bytes]:
    """The metadata of ``model_path`` and its LiteRT file's bytes, checked against each other.

    Needs only the ``.tflite`` and the ``.json`` (a CPU host need not hold the ``.keras``).
    Raises ``ModelFileError`` naming the path and what is wrong.
    """
    path = tflite_path(model_path)
    if not path.is_file() and not model_path.is_file():
        raise ModelFileError(f"model file not found: {model_path} (nor its {path.name})")
    if not path.is_file():
        raise ModelFileError(
            f"model file not found: {path} (write it with: python -m training.export "
            f"--model {model_path})"
        )
    metadata = _read_metadata_file(model_path)
    if metadata.tflite_sha256 is None:
        raise ModelPairMismatchError(
            f"{metadata_path(model_path)} names no .tflite file (write it with: "
            f"python -m training.export --model {model_path})"
        )
    content = path.read_bytes()
    _check_hash(path, hashlib.sha256(content).hexdigest(), metadata.tflite_sha256)
    return metadata, content


def _read_metadata_file(model_path: Path) -> ModelMetadata:
    meta_path = metadata_path(model_path)
    if not meta_path.is_file():
        raise ModelFileError(
            f"model metadata not found: {meta_path} (expected beside {model_path})"
        )
    try:
        return ModelMetadata.model_validate_json(meta_path.read_bytes())
    except ValidationError as error:
        raise ModelFileError(f"invalid model metadata in {meta_path}: {error}") from error


def _check_hash(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise ModelPairMismatchError(
            f"{path} does not match its metadata: sha256 {actual[:12]}…, "
            f"metadata says {expected[:12]}… (half-written or replaced file?)"
        )
