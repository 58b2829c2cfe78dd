"""Detector plugins by name: each detector module registers itself with its own config.

A plugin is a name, a pydantic config (the settings it reads, with their defaults), a builder
from that config, and its fitted ``Framing`` (where the model's crop lies relative to its box,
``stages.framing``). Every module of this package is imported the first time a
name is asked for, so a new detector is one module with a ``@register`` on its builder.

``detector_for(settings)`` builds the one the settings name, from the settings' fields its
config declares; a setting given but read by no field of that config is said in a log line.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..framing import Framing
from .base import DetectorError, FaceDetector

__all__ = [
    "ALIGN_ROLL_DEFAULT",
    "DetectorConfig",
    "DetectorPlugin",
    "build_detector",
    "detector_for",
    "detector_names",
    "framing_for",
    "plugin",
    "register",
]

log = logging.getLogger(__name__)


class DetectorConfig(BaseModel):
    """What every detector reads; a plugin's config adds its own fields (same names as the
    worker's settings, which fill them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_face_px: int = Field(default=40, ge=8, le=2048)


C = TypeVar("C", bound=DetectorConfig)


@dataclass(frozen=True)
class DetectorPlugin(Generic[C]):
    name: str
    config: type[C]
    build: Callable[[C], FaceDetector]
    framing: Framing
    summary: str


_PLUGINS: dict[str, DetectorPlugin[Any]] = {}
_LOADING = threading.Lock()
#: The package's modules, once imported.
_IMPORTED: set[str] = set()


def register(
    name: str, config: type[C], framing: Framing, summary: str
) -> Callable[[Callable[[C], FaceDetector]], Callable[[C], FaceDetector]]:
    """Decorate a builder ``config -> detector`` as the detector ``name``."""

    def decorate(build: Callable[[C], FaceDetector]) -> Callable[[C], FaceDetector]:
        if name in _PLUGINS and _PLUGINS[name].build is not build:
            raise DetectorError(f"two detectors are called {name!r}")
        _PLUGINS[name] = DetectorPlugin(name, config, build, framing, summary)
        return build

    return decorate


def _load_all() -> None:
    """Import every module of this package once (each registers what it defines)."""
    with _LOADING:
        if _IMPORTED:
            return
        package = __name__.rpartition(".")[0]
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
            _IMPORTED.add(module.name)


def detector_names() -> tuple[str, ...]:
    """Every registered detector, sorted."""
    _load_all()
    return tuple(sorted(_PLUGINS))


def plugin(name: str) -> DetectorPlugin[Any]:
    """The plugin called ``name``; DetectorError naming the others when there is none."""
    _load_all()
    found = _PLUGINS.get(name)
    if found is None:
        raise DetectorError(
            f"unknown detector: expected one of {list(detector_names())}, found {name!r}"
        )
    return found


def build_detector(name: str, **fields: Any) -> FaceDetector:
    """The detector ``name`` with its config's defaults overridden by ``fields`` (each must be
    one its config declares)."""
    chosen = plugin(name)
    extra = sorted(set(fields) - set(chosen.config.model_fields))
    if extra:
        raise DetectorError(f"detector {name!r} takes no {', '.join(extra)}")
    return chosen.build(chosen.config(**fields))


def detector_for(settings: BaseModel) -> FaceDetector:
    """The detector ``settings.detector`` names, its config filled from the settings' fields of
    the same names; a field the user set that this detector does not read is logged."""
    chosen = plugin(str(settings.model_dump(include={"detector"})["detector"]))
    wanted = set(chosen.config.model_fields)
    given = settings.model_fields_set
    unread = sorted(
        field for field in given & _DETECTION_FIELDS if field not in wanted and field != "detector"
    )
    if unread:
        log.warning(
            "detector %s does not read %s (set but ignored)", chosen.name, ", ".join(unread)
        )
    values = {field: getattr(settings, field) for field in wanted if hasattr(settings, field)}
    return chosen.build(chosen.config(**values))


#: The settings that only detectors read; one set for a detector that does not declare it is
#: worth a warning.
_DETECTION_FIELDS = frozenset({"min_face_px", "detect_max_width", "tf_threads", "full_every"})


#: Whether crops are turned level on the eye line unless told otherwise (the worker's
#: ``align_roll`` setting and every caller of ``framing_for`` share it): off, because the shipped
#: network learned heads tilted by up to 15 degrees (docs/benchmarks.md, "Roll").
ALIGN_ROLL_DEFAULT = False


def framing_for(
    detector: str, margin: float = 0.0, align_roll: bool = ALIGN_ROLL_DEFAULT
) -> Framing:
    """The fitted framing of ``detector`` (identity for an unknown name), grown by ``margin``,
    turned with the face's roll where ``align_roll`` and the detector's fit both say so."""
    _load_all()
    found = _PLUGINS.get(detector)
    fitted = found.framing if found is not None else Framing()
    aligned = align_roll and fitted.align_roll
    return Framing(fitted.scale, fitted.shift_x, fitted.shift_y, aligned).with_margin(margin)
