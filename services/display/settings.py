"""Display settings: endpoints, mode, sinks and their options (env prefix EMOJIFY_DISPLAY_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.curve import CurveServerSettings, PublicKeyFile
from shared.settings import Endpoint, each_once, split_list
from shared.transport import is_loopback_host

__all__ = ["SINK_NAMES", "DisplaySettings", "SinkName", "default_sinks", "has_screen"]

SinkName: TypeAlias = Literal["window", "http", "video", "jsonl"]
SINK_NAMES: tuple[SinkName, ...] = ("window", "http", "video", "jsonl")


def has_screen() -> bool:
    """Whether a window can be opened (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def default_sinks() -> list[SinkName]:
    """A window when there is a screen, else the MJPEG page."""
    return ["window"] if has_screen() else ["http"]


class DisplaySettings(CurveServerSettings):
    """Settings of ``python -m services.display``."""

    model_config = SettingsConfigDict(env_prefix="EMOJIFY_DISPLAY_")

    # NoDecode: the environment may give a plain comma-separated list instead of JSON.
    preview_endpoints: Annotated[list[Endpoint], NoDecode] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5556"],
        min_length=1,
        max_length=16,
        description="Preview PUB endpoints of the captures to show, one per camera "
        "(comma-separated or repeated); the display connects one SUB to all of them.",
    )
    results_endpoint: str = Field(
        default="tcp://127.0.0.1:5557",
        min_length=6,
        max_length=256,
        description="Endpoint the display binds a PULL on; workers PUSH results here.",
    )
    curve_capture_public_key: PublicKeyFile | None = Field(
        default=None,
        description="Capture's public key file (NAME.key, public), for the preview SUB (needed "
        "with curve_secret_key).",
    )
    mode: Literal["sync", "live"] = Field(
        default="live",
        description="sync: draw each result on its own frame (recordings, tests); "
        "live: draw every frame with the latest result per stream, stale after result_ttl_ms.",
    )
    sinks: Annotated[list[SinkName], NoDecode] = Field(
        default_factory=default_sinks,
        min_length=1,
        max_length=4,
        description="Where rendered frames and results go: window, http, video, jsonl "
        "(comma-separated or a JSON list). Default: window with a screen, else http.",
    )
    http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        description="Address the MJPEG page listens on (loopback unless you mean to share it).",
    )
    http_token_file: Path | None = Field(
        default=None,
        description="File holding the page's access token (16+ characters): the login form "
        "or 'Authorization: Bearer <token>'. Needed, or http_users_file, off loopback.",
    )
    http_users_file: Path | None = Field(
        default=None,
        description="File of 'user:$argon2id$...' lines (python -m commands.keys "
        "http-user) for the page's login form; older PBKDF2 lines are rehashed at sign-in.",
    )
    http_tls_cert_file: Path | None = Field(
        default=None, description="TLS certificate (PEM) for the page: serve https."
    )
    http_tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of http_tls_cert_file."
    )
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the MJPEG page; 0 picks a free one."
    )
    http_max_clients: int = Field(
        default=8, ge=1, le=64, description="Most MJPEG streams served at once; more get 503."
    )
    http_max_connections: int = Field(
        default=1000,
        ge=8,
        le=100_000,
        description="Most connections the page holds open (idle ones too, closed after 10 s "
        "without a request); a request beyond them is answered 503 at once.",
    )
    http_max_sign_ins: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Most credentials checked at the same time (each password check takes "
        "tens of ms on purpose); one more is answered 429 at once.",
    )
    jpeg_quality: int = Field(
        default=80, ge=10, le=100, description="JPEG quality of frames served over HTTP."
    )
    video_path: Path | None = Field(
        default=None,
        description="File the video sink writes (.avi: MJPG, .mp4: mp4v); needed with 'video'.",
    )
    video_fps: float = Field(
        default=15.0, gt=0.0, le=240.0, description="Frame rate written into the video file."
    )
    jsonl_path: Path | None = Field(
        default=None,
        description="File the jsonl sink appends one line per result to; needed with 'jsonl'.",
    )
    result_ttl_ms: int = Field(
        default=500,
        ge=50,
        le=60_000,
        description="Live mode: a result older than this (by capture time) is shown as stale.",
    )
    ring_size: int = Field(
        default=256,
        ge=4,
        le=10_000,
        description="Frames (and early results) kept for matching by (stream_id, seq).",
    )
    end_grace_s: float = Field(
        default=5.0,
        ge=0.0,
        le=600.0,
        description="Sync mode: how long after EndOfStream to wait for missing results.",
    )
    waiting_after_ms: int = Field(
        default=1000,
        ge=100,
        le=60_000,
        description="Sync mode: with no matched pair for this long, show the newest frame "
        "with a 'waiting for inference' banner.",
    )
    offline_after_s: float = Field(
        default=2.0,
        ge=0.2,
        le=600.0,
        description="While frames arrive, no result for this long shows an 'inference "
        "offline' banner (and inference_offline=1 on /metrics and /healthz) until results "
        "come back.",
    )
    status_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of a separate /metrics and /healthz endpoint; 0 = off (the http "
        "sink's page serves both anyway).",
    )
    show_stream: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Only render this stream id; unset shows every stream, several in a grid.",
    )
    grid_width: int = Field(
        default=1280,
        ge=160,
        le=7680,
        description="Width in pixels of the grid that shows several streams side by side.",
    )
    emoji_opacity: float = Field(
        default=0.85, ge=0.0, le=1.0, description="Opacity of the emoji drawn over each face."
    )
    window_title: str = Field(
        default="Emojify", min_length=1, max_length=100, description="Title of window and page."
    )

    @field_validator("sinks", "preview_endpoints", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # Environment and command line give one string: accept "http,jsonl" and '["http"]'.
        return split_list(value)

    @field_validator("sinks", "preview_endpoints")
    @classmethod
    def _unique(cls, items: list[str]) -> list[str]:
        return each_once(items)

    @model_validator(mode="after")
    def _curve(self) -> DisplaySettings:
        self.check_curve(
            {
                **{f"preview_endpoints[{n}]": e for n, e in enumerate(self.preview_endpoints)},
                "results_endpoint": self.results_endpoint,
            },
            curve_allowed_dir=self.curve_allowed_dir,
            curve_capture_public_key=self.curve_capture_public_key,
        )
        return self

    @model_validator(mode="after")
    def _page_access(self) -> DisplaySettings:
        if (self.http_tls_cert_file is None) != (self.http_tls_key_file is None):
            raise ValueError(
                "https needs both http_tls_cert_file and http_tls_key_file "
                "(--http-tls-cert-file, --http-tls-key-file)"
            )
        credential = self.http_token_file is not None or self.http_users_file is not None
        if (
            "http" in self.sinks
            and not is_loopback_host(self.http_host)
            and not credential
            and not self.allow_insecure_network
        ):
            raise ValueError(
                f"http_host {self.http_host} serves the page (people's faces) to the network: "
                "set http_token_file or http_users_file (--http-token-file, --http-users-file), "
                "or allow_insecure_network for a trusted, isolated network"
            )
        return self

    @model_validator(mode="after")
    def _sink_options(self) -> DisplaySettings:
        if "video" in self.sinks and self.video_path is None:
            raise ValueError("the video sink needs video_path (--video-path)")
        if self.video_path is not None and self.video_path.suffix.lower() not in (".avi", ".mp4"):
            raise ValueError(f"video_path must end in .avi or .mp4, found {self.video_path}")
        if "jsonl" in self.sinks and self.jsonl_path is None:
            raise ValueError("the jsonl sink needs jsonl_path (--jsonl-path)")
        if "window" in self.sinks and not has_screen():
            raise ValueError("the window sink needs a screen (DISPLAY or WAYLAND_DISPLAY)")
        return self
