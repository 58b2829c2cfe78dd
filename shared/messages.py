"""The typed messages every service exchanges: frozen pydantic models with a schema version."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, ClassVar, Final, Literal, SupportsFloat, SupportsInt, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.labels import EMOTIONS, NUM_EMOTIONS

__all__ = [
    "EMOTIONS",
    "MAX_DONE",
    "MAX_FACES",
    "NUM_EMOTIONS",
    "SCHEMA_VERSION",
    "EndOfStream",
    "Face",
    "FrameHeader",
    "Heartbeat",
    "Message",
    "ResultHeader",
    "StageTimings",
    "WireModel",
    "WorkRequest",
]

#: The wire's major version: it changes only when a field changes meaning or a required one
#: is added, never for an optional field (receivers ignore fields they do not know, and a
#: field a sender omits takes its default), so hosts one release apart understand each other.
SCHEMA_VERSION: Final = 1
MAX_FACES: Final = 64
#: ``score`` is a copy of one of ``probabilities``; allow for a float32 -> float64 round trip.
SCORE_TOLERANCE: Final = 1e-3

_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

StreamId = Annotated[
    str, Field(pattern=_NAME_PATTERN, description="Camera or source name, e.g. 'cam0'.")
]
WorkerId = Annotated[
    str, Field(pattern=_NAME_PATTERN, description="Fixed identity of an inference worker.")
]
Seq = Annotated[int, Field(ge=0, description="Per-stream frame number, from 0.")]
WallClockNs = Annotated[int, Field(ge=0, description="Wall clock, time.time_ns().")]
Milliseconds = Annotated[float, Field(ge=0.0)]


#: Every message and its parts: frozen; fields a newer release added are ignored (the wire
#: counts them); allow_inf_nan=False: a NaN probability or timing is a bug upstream, not data.
WIRE_CONFIG: Final = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class WireModel(BaseModel):
    """Base of every message: frozen, tolerant of fields it does not know, versioned, named on
    the wire. A field added within a schema version must have a default."""

    model_config = WIRE_CONFIG

    kind: ClassVar[str] = ""
    #: Whether the message travels with a non-empty payload (JPEG bytes).
    has_payload: ClassVar[bool] = False

    schema_version: Literal[1] = SCHEMA_VERSION  # the wire refuses other versions first


class FrameHeader(WireModel):
    """One captured frame; the payload is the JPEG bytes."""

    kind: ClassVar[str] = "frame"
    has_payload: ClassVar[bool] = True

    stream_id: StreamId
    seq: Seq
    captured_at_ns: WallClockNs
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)
    encoding: Literal["jpeg"] = "jpeg"


class Face(BaseModel):
    """One detected face: where it is and what the model thinks it shows."""

    model_config = WIRE_CONFIG

    box_xywh: tuple[int, int, int, int] = Field(description="Box in frame pixels: x, y, w, h.")
    probabilities: tuple[float, ...] = Field(
        description="One probability per label, EMOTIONS order."
    )
    label: str = Field(description="One of EMOTIONS.")
    score: float = Field(ge=0.0, le=1.0, description="The probability of label.")
    track_id: int | None = None

    @field_validator("box_xywh")
    @classmethod
    def _box_has_area(cls, box_xywh: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if box_xywh[2] <= 0 or box_xywh[3] <= 0:
            raise ValueError(f"expected width and height > 0, found box_xywh={box_xywh}")
        return box_xywh

    @field_validator("probabilities")
    @classmethod
    def _seven_probabilities(cls, probabilities: tuple[float, ...]) -> tuple[float, ...]:
        if len(probabilities) != NUM_EMOTIONS:
            raise ValueError(
                f"expected {NUM_EMOTIONS} probabilities ({', '.join(EMOTIONS)}), "
                f"found {len(probabilities)}"
            )
        for index, value in enumerate(probabilities):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"expected probabilities within 0..1, found [{index}]={value}")
        return probabilities

    @field_validator("label")
    @classmethod
    def _known_label(cls, label: str) -> str:
        if label not in EMOTIONS:
            raise ValueError(f"expected one of {list(EMOTIONS)}, found {label!r}")
        return label

    @model_validator(mode="after")
    def _score_is_probability_of_label(self) -> Face:
        expected = self.probabilities[EMOTIONS.index(self.label)]
        if abs(self.score - expected) > SCORE_TOLERANCE:
            raise ValueError(
                f"expected score == probabilities[{self.label!r}] = {expected}, found {self.score}"
            )
        return self

    @classmethod
    def from_probabilities(
        cls,
        box_xywh: Iterable[SupportsInt],
        probabilities: Iterable[SupportsFloat],
        track_id: int | None = None,
    ) -> Face:
        """Build a face labelled with its most probable emotion (accepts numpy scalars)."""
        values = tuple(float(value) for value in probabilities)
        box = tuple(int(value) for value in box_xywh)
        if len(box) != 4:
            raise ValueError(f"expected box_xywh of 4 values, found {len(box)}")
        if len(values) != NUM_EMOTIONS:
            raise ValueError(f"expected {NUM_EMOTIONS} probabilities, found {len(values)}")
        best = max(range(NUM_EMOTIONS), key=values.__getitem__)
        return cls(
            box_xywh=(box[0], box[1], box[2], box[3]),
            probabilities=values,
            label=EMOTIONS[best],
            score=values[best],
            track_id=track_id,
        )


class StageTimings(BaseModel):
    """Time spent per stage of the worker, in milliseconds."""

    model_config = WIRE_CONFIG

    decode_ms: Milliseconds = 0.0
    detect_ms: Milliseconds = 0.0
    classify_ms: Milliseconds = 0.0
    total_ms: Milliseconds = 0.0


class ResultHeader(WireModel):
    """What a worker found in one frame; no pixels. Exactly one per frame, even on error."""

    kind: ClassVar[str] = "result"

    stream_id: StreamId
    seq: Seq
    captured_at_ns: WallClockNs
    worker_id: WorkerId
    model_version: str = Field(max_length=128)
    faces: tuple[Face, ...] = Field(default=(), max_length=MAX_FACES)
    timings: StageTimings = StageTimings()
    error: str | None = Field(
        default=None,
        max_length=1024,
        description="Why the frame could not be processed (e.g. corrupt JPEG); faces then empty.",
    )
    completed_at_ns: WallClockNs


class EndOfStream(WireModel):
    """Capture has published its last frame of a stream (seqs 0..frame_count-1)."""

    kind: ClassVar[str] = "end"

    stream_id: StreamId
    frame_count: int = Field(ge=0)
    dropped: int = Field(default=0, ge=0)


#: Most seqs one WorkRequest reports done (a worker holds at most 16 credit per capture).
MAX_DONE: Final = 64


class WorkRequest(WireModel):
    """A worker asks capture for up to ``credit`` more frames, and says which it finished.

    ``done`` and ``started_at_ns`` were added within schema version 1: their defaults are what
    a sender that predates them means (nothing reported; restarts not told apart).
    """

    kind: ClassVar[str] = "ready"

    worker_id: WorkerId
    credit: int = Field(ge=1, le=16)
    done: tuple[Seq, ...] = Field(
        default=(),
        max_length=MAX_DONE,
        description="Seqs (of this capture's stream) whose result this worker has sent.",
    )
    started_at_ns: WallClockNs = Field(
        default=0,
        description="When the worker process started; a new value is a restarted worker that "
        "lost whatever it held. 0: unknown (capture then does not track its frames).",
    )


class Heartbeat(WireModel):
    """Application-level liveness signal."""

    kind: ClassVar[str] = "heartbeat"

    sender: str = Field(pattern=_NAME_PATTERN)
    sent_at_ns: WallClockNs


Message: TypeAlias = FrameHeader | ResultHeader | EndOfStream | WorkRequest | Heartbeat
