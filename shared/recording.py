"""The recording format (a folder with recording.json and JPEG frames) and its validating loader."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.messages import StreamId

__all__ = ["RECORDING_FILE", "RecordedFace", "RecordedFrame", "Recording", "load_recording"]

RECORDING_FILE: Final = "recording.json"


class RecordedFace(BaseModel):
    """A ground-truth face in one recorded frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    box_xywh: tuple[int, int, int, int] = Field(description="Box in frame pixels: x, y, w, h.")
    who: str = Field(default="", max_length=64, description="Whose face, e.g. 'hopper'.")


class RecordedFrame(BaseModel):
    """One frame: its JPEG file, relative to the recording folder, and its faces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(min_length=1, description="JPEG path relative to the recording folder.")
    faces: tuple[RecordedFace, ...] = ()

    @field_validator("file")
    @classmethod
    def _inside_folder(cls, file: str) -> str:
        # A recording must not make capture read files outside its folder.
        path = Path(file)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"expected a path inside the recording folder, found {file!r}")
        return file


class Recording(BaseModel):
    """``recording.json``: stream id, frame rate, frame size and the frames in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: StreamId
    fps: float = Field(gt=0, le=240)
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)
    frames: tuple[RecordedFrame, ...] = Field(min_length=1)


def load_recording(folder: Path) -> Recording:
    """Read and validate ``folder/recording.json``; raises ValueError saying what is wrong."""
    path = folder / RECORDING_FILE
    try:
        return Recording.model_validate_json(path.read_bytes())
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from error
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "<file>"
        raise ValueError(
            f"invalid {path}: {where}: {first['msg']} ({error.error_count()} error(s))"
        ) from error
