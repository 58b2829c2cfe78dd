"""Settings of the capture service (CLI > EMOJIFY_CAPTURE_* environment > defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.curve import CurveServerSettings


class CaptureSettings(CurveServerSettings):
    """Where frames come from, how they are paced, and where they go."""

    model_config = SettingsConfigDict(env_prefix="EMOJIFY_CAPTURE_")

    source: str = Field(
        default="0",
        min_length=1,
        max_length=4096,
        description=(
            "An integer = webcam index; a video file; a folder of images; or a recording "
            "(a folder with recording.json)."
        ),
    )
    stream_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "Name of the stream in every frame; default: 'cam<N>' for a webcam, the recording's "
            "stream_id, else the file or folder name."
        ),
    )
    mode: Literal["live", "lossless"] = Field(
        default="live",
        description=(
            "live: read at the source's pace, keep only the newest unsent frame, count drops; "
            "lossless: read a frame only when a worker has credit, never drop."
        ),
    )
    pace: Literal["source", "fast"] = Field(
        default="source",
        description=(
            "source: files and recordings at their own frame rate; fast: as fast as workers "
            "take frames (webcams are always paced by the camera)."
        ),
    )
    display_wait_s: float = Field(
        default=20.0,
        ge=0.0,
        le=3600.0,
        description=(
            "lossless: hold the first frame until a display subscribes to the preview (so it "
            "sees every frame), at most this long; 0 = do not wait."
        ),
    )
    fps: float = Field(
        default=15.0,
        gt=0.0,
        le=240.0,
        description="Frame rate of an image folder, and of a video file that states none.",
    )
    loop: bool = Field(
        default=False,
        description="Replay a file, folder or recording forever; seq numbers keep counting.",
    )
    exit_at_end: bool = Field(
        default=False,
        description="Exit after EndOfStream instead of staying up idle until stopped.",
    )
    jpeg_quality: int = Field(
        default=85, ge=1, le=100, description="JPEG quality for frames capture has to encode."
    )
    max_credit: int = Field(
        default=4, ge=1, le=64, description="Most frames one worker may have asked for at once."
    )
    max_width: int = Field(
        default=1280, ge=16, le=8192, description="Wider frames are scaled down before encoding."
    )
    max_height: int = Field(
        default=720, ge=16, le=8192, description="Taller frames are scaled down before encoding."
    )
    frames_endpoint: str = Field(
        default="tcp://127.0.0.1:5555",
        min_length=1,
        description="ROUTER bind endpoint where workers ask for frames.",
    )
    status_port: int = Field(
        default=9101,
        ge=0,
        le=65535,
        description="Port of the /metrics (Prometheus) and /healthz endpoint; 0 = off.",
    )
    worker_timeout_s: float = Field(
        default=3.0,
        gt=0.0,
        le=600.0,
        description="A worker not heard from (request, heartbeat) for this long is lost: "
        "lossless hands its frames in flight to another worker, live drops them.",
    )
    preview_endpoint: str = Field(
        default="tcp://127.0.0.1:5556",
        min_length=1,
        description="PUB bind endpoint where every frame read is published for the display.",
    )

    @model_validator(mode="after")
    def _curve(self) -> CaptureSettings:
        self.check_curve(
            {"frames_endpoint": self.frames_endpoint, "preview_endpoint": self.preview_endpoint},
            curve_allowed_dir=self.curve_allowed_dir,
        )
        return self
