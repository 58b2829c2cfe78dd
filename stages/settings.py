"""How faces are found, cropped, classified and tracked: the settings of the stages, which the
worker's settings and ``commands.analyze``'s take in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field

from shared.settings import ServiceSettings

from .detectors.registry import ALIGN_ROLL_DEFAULT, detector_names
from .views import DEFAULT_POLICY, MirrorPolicy

__all__ = ["DEFAULT_MODEL_PATH", "DetectorName", "FaceSettings"]

DEFAULT_MODEL_PATH: Final = Path("models/emotion_model.keras")


def _known_detector(name: str) -> str:
    names = detector_names()
    if name not in names:
        raise ValueError(f"expected one of {list(names)}, found {name!r}")
    return name


#: A registered detector plugin's name (``detectors.registry``; docs/benchmarks.md compares
#: them).
DetectorName = Annotated[str, AfterValidator(_known_detector)]


class FaceSettings(ServiceSettings):
    """How faces are found, cropped, classified and tracked: the worker's settings that
    ``commands.analyze`` shares."""

    model_path: Path = Field(
        default=DEFAULT_MODEL_PATH,
        description="Keras model file written by training; its .json metadata lies beside it.",
    )
    detector: DetectorName = Field(
        default="blazeface_tracking",
        description="Face detector: blazeface_tracking (blazeface on a stream's first frame, "
        "every full_every frames, on a cut and when a face is lost; in between each face "
        "looked for around its last place and entering faces by one whole-frame pass), "
        "blazeface (MediaPipe BlazeFace short range on the whole "
        "frame and two sizes of overlapping tiles, each candidate confirmed by a second look: "
        "faces from 60 px in 640x480; YuNet on the whole frame adds the faces it misses), "
        "blazeface_single (the whole frame only: faces over ~120 px, about 2 ms a frame), "
        "haar (OpenCV cascade), "
        "blazeface_full (full range, sparse), mtcnn (needs the [mtcnn] extra).",
    )
    full_every: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="blazeface_tracking: frames of a stream between two full detection passes.",
    )
    sweep_every: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="YuNet sweeps the whole frame for the faces BlazeFace misses at one full "
        "pass in this many (0: never): blazeface, one frame in this many; blazeface_tracking, "
        "one of its full passes in this many and each stream's first and one after each cut.",
    )
    min_face_px: int = Field(
        default=40, ge=8, le=2048, description="Smallest face side to detect, in frame pixels."
    )
    detect_max_width: int = Field(
        default=640,
        ge=160,
        le=8192,
        description="haar and mtcnn: frames wider than this are scaled down for detection "
        "(boxes are mapped back to full-frame pixels). BlazeFace reads every frame at its "
        "network's own 128 px, whatever the width.",
    )
    face_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Grow each face's crop by this fraction of its size per side, on top of "
        "the framing fitted for the detector (stages/framing.py).",
    )
    align_roll: bool = Field(
        default=ALIGN_ROLL_DEFAULT,
        description="Turn each face's crop so that its eye line is level before the model sees "
        "it (BlazeFace detectors, which find the eyes; the others give no roll). Off by "
        "default: the shipped network learned heads tilted by up to 15 degrees, and levelling "
        'helps only where they tilt further (docs/benchmarks.md, "Roll").',
    )
    tf_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Threads of the classifier and BlazeFace on LiteRT, and TensorFlow's "
        "intra-/inter-op pools where it runs (0: every core; TensorFlow decides).",
    )
    mirror: MirrorPolicy = Field(
        default=DEFAULT_POLICY,
        description="Which views of a face the network sees (models written since 2026-12-07): "
        "always: the face and its mirror image averaged (two passes); alternate: both for a "
        "face seen for the first time or without a track, one a frame in turn, face and "
        "mirror, for a face the detector follows (the smoothing averages them, so with "
        "--smoothing 0 choose always; half the classifier's time); never: the face alone. "
        'docs/benchmarks.md, "Mirror views".',
    )
    classify_every: int = Field(
        default=2,
        ge=1,
        le=30,
        description="A face the detector follows is classified at its track's first frame and "
        "every N-th frame after it, and keeps its track's smoothed probabilities in between "
        '(1: every frame; docs/benchmarks.md, "Classifying followed faces").',
    )
    classifier_runtime: Literal["auto", "litert", "tensorflow"] = Field(
        default="auto",
        description="litert: the model's .tflite file on LiteRT (XNNPACK), the fastest on a CPU "
        "and no TensorFlow in the process; tensorflow: the .keras file as a compiled "
        "tf.function (for a GPU); auto: tensorflow where an NVIDIA GPU and TensorFlow are "
        "both present, else litert.",
    )

    track_iou: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="Least IoU between a face and a track of the previous frame to be the same "
        "face (greedy, highest IoU first).",
    )
    track_max_missed: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Frames (of its stream, seen by this worker) a track survives without its "
        "face before it is forgotten.",
    )
    smoothing: float = Field(
        default=0.5,
        ge=0.0,
        le=0.95,
        description="Weight of a track's past in its probabilities (exponential moving "
        "average, per worker); 0 reports each frame's own probabilities.",
    )
    label_hold_frames: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Frames another emotion must lead a track's smoothed probabilities before "
        "its reported label changes (1: change at once).",
    )
