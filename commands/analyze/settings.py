"""Settings of ``commands.analyze`` (prefix EMOJIFY_ANALYZE_): what to read, where to write,
and the worker's own detector, model and tracking settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import CliPositionalArg, SettingsConfigDict

from stages.settings import FaceSettings

__all__ = ["AnalyzeSettings"]


class AnalyzeSettings(FaceSettings):
    """An image, a folder of images or a video, analysed with the worker's settings."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_ANALYZE_", cli_prog_name="commands.analyze"
    )

    path: CliPositionalArg[Path] = Field(
        description="An image, a folder of images, or a video file."
    )
    out: Path | None = Field(
        default=None, description="Output folder (default: var/analyze/<name of PATH>)."
    )
