"""Settings of an inference worker (prefix EMOJIFY_WORKER_): endpoints, model, reload, detector,
tracking, batching, limits."""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated, Any, Final

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.curve import CurveSettings, PublicKeyFile
from shared.settings import Endpoint, each_once, split_list
from stages.settings import FaceSettings

__all__ = [
    "WorkerSettings",
    "default_capture_endpoints",
    "default_worker_id",
]

# Same character set and length as WorkerId in shared.messages, so the default always validates.
_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def default_worker_id() -> str:
    """``<hostname>-<pid>``, with the hostname cut to fit the 64-character id pattern."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    pid = str(os.getpid())
    return f"{host[: 63 - len(pid)]}-{pid}"


def default_capture_endpoints() -> list[str]:
    """The one capture on this host."""
    return ["tcp://127.0.0.1:5555"]


class WorkerSettings(CurveSettings, FaceSettings):
    """One inference worker. Command line > EMOJIFY_WORKER_* environment > defaults."""

    model_config = SettingsConfigDict(env_prefix="EMOJIFY_WORKER_")

    worker_id: str = Field(
        default_factory=default_worker_id,
        pattern=_ID_PATTERN,
        description="Fixed identity on every capture's ROUTER and on results "
        "(default <hostname>-<pid>; supervisord passes worker-N).",
    )
    # NoDecode: the environment may give a plain comma-separated list instead of JSON.
    capture_endpoints: Annotated[list[Endpoint], NoDecode] = Field(
        default_factory=default_capture_endpoints,
        min_length=1,
        max_length=16,
        description="Capture ROUTER endpoints to connect to (comma-separated or repeated).",
    )
    results_endpoint: Endpoint = Field(
        default="tcp://127.0.0.1:5557", description="Display PULL endpoint the results go to."
    )
    curve_capture_public_key: PublicKeyFile | None = Field(
        default=None,
        description="Capture's public key file (NAME.key, public), for every capture endpoint "
        "(needed with curve_secret_key).",
    )
    curve_display_public_key: PublicKeyFile | None = Field(
        default=None,
        description="Display's public key file (NAME.key, public), for the results endpoint "
        "(needed with curve_secret_key).",
    )
    credit: int = Field(
        default=2, ge=1, le=16, description="Frames asked for in flight per capture endpoint."
    )
    heartbeat_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="Seconds between heartbeats to each capture when nothing else was sent "
        "(keep it well below the capture's worker_timeout_s).",
    )
    reload_check_s: float = Field(
        default=2.0,
        ge=0.0,
        le=3600.0,
        description="Seconds between checks of the model file for a new model to load while "
        "running (its inode, size and mtime, and its metadata's); 0 turns hot reload off.",
    )
    max_batch_wait_ms: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="After a frame arrives, wait up to this long for more frames (other "
        "credit, other streams) and classify all their faces in one call; 0 classifies each "
        "frame alone. Unset: AUTO_BATCH_WAIT_MS on a GPU or with several capture endpoints, "
        "else 0.",
    )
    max_batch_faces: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Stop gathering frames for a batch once it holds this many faces (a "
        "frame's faces are never split, so one call may hold a frame's worth more).",
    )

    @field_validator("capture_endpoints", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("capture_endpoints")
    @classmethod
    def _unique(cls, endpoints: list[str]) -> list[str]:
        return each_once(endpoints)

    @model_validator(mode="after")
    def _curve(self) -> WorkerSettings:
        endpoints = {f"capture_endpoints[{n}]": e for n, e in enumerate(self.capture_endpoints)}
        self.check_curve(
            {**endpoints, "results_endpoint": self.results_endpoint},
            curve_capture_public_key=self.curve_capture_public_key,
            curve_display_public_key=self.curve_display_public_key,
        )
        return self


#: Batching wait when a GPU or several streams make it pay: well below one frame at 30 fps.
AUTO_BATCH_WAIT_MS: Final = 10.0


def batch_wait_ms(settings: WorkerSettings, on_gpu: bool) -> float:
    """The batching wait to use: the setting, or when unset, AUTO_BATCH_WAIT_MS where a GPU or
    several capture endpoints give more than one frame to batch, else 0 (one CPU, one stream:
    batching would only add latency, see docs/benchmarks.md)."""
    if settings.max_batch_wait_ms is not None:
        return settings.max_batch_wait_ms
    return AUTO_BATCH_WAIT_MS if on_gpu or len(settings.capture_endpoints) > 1 else 0.0
