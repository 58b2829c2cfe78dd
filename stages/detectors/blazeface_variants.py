"""The BlazeFace detectors by name: the tiled pass with second looks (``blazeface``), the
whole frame alone (``blazeface_single``), and the full-range network (``blazeface_full``)."""

from __future__ import annotations

from typing import Final

from pydantic import Field

from ..framing import Framing
from .blazeface import BlazeFaceDetector
from .registry import DetectorConfig, register
from .yunet_sweep import SWEEP_EVERY

__all__ = ["BLAZEFACE_FRAMING", "BlazeFaceConfig"]

#: BlazeFace's box (brows to mouth) against FER2013's square, fitted on train/ scenes
#: (docs/benchmarks.md, "Framing"); every short-range variant draws the same box.
BLAZEFACE_FRAMING: Final = Framing(1.14, 0.0, 0.045)


class BlazeFaceConfig(DetectorConfig):
    #: Cores BlazeFace uses (0: all; tiled, one single-threaded interpreter per core, at most
    #: four): the worker's ``tf_threads``.
    tf_threads: int = Field(default=0, ge=0, le=256)
    #: YuNet sweeps the whole frame at one full pass in this many (0: never; ``yunet_sweep``):
    #: for ``blazeface`` one frame in this many, for ``blazeface_tracking`` one of its full
    #: passes in this many and every first one and one after a cut.
    sweep_every: int = Field(default=SWEEP_EVERY, ge=0, le=1000)


@register(
    "blazeface",
    BlazeFaceConfig,
    BLAZEFACE_FRAMING,
    "short range on the whole frame and two sizes of tiles, each candidate looked at again",
)
def _tiled(config: BlazeFaceConfig) -> BlazeFaceDetector:
    return BlazeFaceDetector(
        "short",
        min_face_px=config.min_face_px,
        threads=config.tf_threads,
        tiled=True,
        sweep_every=config.sweep_every,
    )


@register(
    "blazeface_single",
    BlazeFaceConfig,
    BLAZEFACE_FRAMING,
    "short range on the whole frame alone: faces over about a fifth of the frame",
)
def _single(config: BlazeFaceConfig) -> BlazeFaceDetector:
    return BlazeFaceDetector("short", min_face_px=config.min_face_px, threads=config.tf_threads)


# Levelling on its keypoints showed no gain (-0.9 points on the 400 scenes' found faces).
@register(
    "blazeface_full",
    BlazeFaceConfig,
    Framing(1.16, 0.0, 0.055, align_roll=False),
    "full range on the whole frame (sparse, for faces far away)",
)
def _full(config: BlazeFaceConfig) -> BlazeFaceDetector:
    return BlazeFaceDetector("full", min_face_px=config.min_face_px, threads=config.tf_threads)
