"""Scenes for end-to-end accuracy: FER2013 faces placed on backgrounds, with their truth.

Each scene is a 640x480 BGR frame with 1-3 faces of 60-300 px at varied positions (some partly
out of the frame), on a photo or synthetic background, under drawn lighting, blur, noise and
JPEG quality, as a webcam and the capture service would deliver it; a clip is a few such frames
in which the same faces move a little. A face's truth is the
square it was pasted into (its FER2013 framing) and its label. Pure numpy/OpenCV, seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_WH",
    "Scene",
    "TruthFace",
    "backgrounds",
    "make_clip",
    "make_scene",
    "photo_bgr",
]

FRAME_WH: Final = (640, 480)
#: skimage.data images inside its wheel that a webcam could see behind someone and that hold no
#: human face: not astronaut or camera (portraits), coins (heads on them), nor the sky
#: (hubble_deep_field) and the moon, whose speckles no room has.
BACKGROUND_NAMES: Final = (
    "brick",
    "chelsea",
    "clock",
    "coffee",
    "colorwheel",
    "grass",
    "gravel",
    "immunohistochemistry",
    "page",
    "rocket",
    "text",
)
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class TruthFace:
    """Where a face was pasted (its FER2013 frame, maybe partly outside) and what it shows."""

    box_xywh: tuple[int, int, int, int]
    label: int
    #: Index of the face in the set the scene drew from.
    index: int


@dataclass(frozen=True)
class Scene:
    jpeg: bytes
    faces: tuple[TruthFace, ...]


def photo_bgr(name: str) -> Image:
    """The photo ``name`` of ``skimage.data`` (shipped in its wheel) as a BGR uint8 image."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[:, :, 2::-1]).astype(np.uint8)


def backgrounds() -> list[Image]:
    """Photos shipped in scikit-image's wheel (as BGR), for scene backgrounds."""
    images = []
    for name in BACKGROUND_NAMES:
        try:
            images.append(photo_bgr(name))
        except Exception:  # an image that would need a download: not here, and not needed
            continue
    return images


def _background(rng: np.random.Generator, photos: Sequence[Image]) -> Image:
    width, height = FRAME_WH
    if photos and rng.random() < 0.7:
        photo = photos[int(rng.integers(len(photos)))]
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.5, 1.0)
        cw, ch = max(16, int(pw * scale)), max(16, int(ph * scale))
        x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        frame = cv2.resize(photo[y : y + ch, x : x + cw], FRAME_WH, interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            frame = frame[:, ::-1]
        return np.ascontiguousarray(frame)
    # A room-like synthetic: a gradient wall with a few soft shapes.
    top, bottom = rng.integers(30, 230, 3), rng.integers(30, 230, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    frame = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1))
    frame = frame.astype(np.uint8)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(-100, width)), int(rng.integers(-100, height))
        x1, y1 = x0 + int(rng.integers(40, 300)), y0 + int(rng.integers(40, 300))
        if rng.random() < 0.5:
            cv2.rectangle(frame, (x0, y0), (x1, y1), colour, -1)
        else:
            cv2.circle(frame, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 2, colour, -1)
    return np.asarray(cv2.GaussianBlur(frame, (0, 0), 2.0), dtype=np.uint8)


def _place(
    rng: np.random.Generator, side: int, taken: Sequence[TruthFace]
) -> tuple[int, int] | None:
    """A top-left corner for a square of ``side`` that overlaps no taken square; with a small
    chance, up to 30% of it outside the frame."""
    width, height = FRAME_WH
    out = int(side * 0.3) if rng.random() < 0.15 else 0
    for _ in range(30):
        x = int(rng.integers(-out, max(-out + 1, width - side + out + 1)))
        y = int(rng.integers(-out, max(-out + 1, height - side + out + 1)))
        if all(
            x + side <= tx or tx + ts <= x or y + side <= ty or ty + ts <= y
            for tx, ty, ts, _ in (face.box_xywh for face in taken)
        ):
            return x, y
    return None


def _paste(
    frame: Image, face_gray: Image, box: tuple[int, int, int, int], tint: bool, roll_deg: float
) -> None:
    x, y, side, _ = box
    face = cv2.resize(face_gray, (side, side), interpolation=cv2.INTER_CUBIC)
    if roll_deg:  # the head tilted clockwise on screen, its frame filled in from its edges
        centre = ((side - 1) / 2, (side - 1) / 2)
        turn = cv2.getRotationMatrix2D(centre, -roll_deg, 1.0)
        face = cv2.warpAffine(face, turn, (side, side), borderMode=cv2.BORDER_REFLECT)
    face_bgr = np.stack([face] * 3, axis=-1).astype(np.float32)
    if tint:  # a skin-like colour cast on the gray face
        face_bgr *= np.array([0.82, 0.9, 1.0], np.float32)
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    frame[y0:y1, x0:x1] = np.clip(face_bgr[y0 - y : y1 - y, x0 - x : x1 - x], 0, 255)


def make_scene(
    rng: np.random.Generator,
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    photos: Sequence[Image],
    *,
    sides: tuple[int, int] = (60, 300),
    roll_deg: float = 0.0,
) -> Scene:
    """One scene with 1-3 of ``faces`` (N, 48, 48[, 1]) drawn at random, as a JPEG; each face
    tilted by up to ``roll_deg`` either way."""
    return make_clip(rng, faces, labels, photos, 1, sides=sides, roll_deg=roll_deg)[0]


def make_clip(
    rng: np.random.Generator,
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    photos: Sequence[Image],
    frames: int,
    *,
    sides: tuple[int, int] = (60, 300),
    step_px: int = 4,
    roll_deg: float = 0.0,
) -> list[Scene]:
    """``frames`` scenes of the same faces on the same background, each face moving by up to
    ``step_px`` per frame and tilted by up to ``roll_deg`` either way (the first frame is
    ``make_scene``'s)."""
    background = _background(rng, photos)
    truth: list[TruthFace] = []
    tints: list[bool] = []
    for _ in range(int(rng.integers(1, 4))):
        side = round(math.exp(rng.uniform(math.log(sides[0]), math.log(sides[1]))))
        corner = _place(rng, side, truth)
        if corner is None:
            continue
        index = int(rng.integers(len(faces)))
        truth.append(TruthFace((corner[0], corner[1], side, side), int(labels[index]), index))
        tints.append(rng.random() < 0.5)
    camera_seed = int(rng.integers(2**32))
    # Drawn after everything else so that roll 0 gives the scenes it always gave.
    rolls = [float(rng.uniform(-roll_deg, roll_deg)) if roll_deg else 0.0 for _ in truth]
    clip = []
    for number in range(frames):
        if number:
            truth = [
                TruthFace(
                    (
                        face.box_xywh[0] + int(rng.integers(-step_px, step_px + 1)),
                        face.box_xywh[1] + int(rng.integers(-step_px, step_px + 1)),
                        face.box_xywh[2],
                        face.box_xywh[3],
                    ),
                    face.label,
                    face.index,
                )
                for face in truth
            ]
        frame = background.copy()
        for face, tint, roll in zip(truth, tints, rolls, strict=True):
            _paste(frame, faces[face.index].reshape(faces.shape[1:3]), face.box_xywh, tint, roll)
        clip.append(Scene(_shoot(frame, np.random.default_rng(camera_seed)), tuple(truth)))
    return clip


def _shoot(frame: Image, rng: np.random.Generator) -> bytes:
    """The camera (lighting, focus, sensor noise), then the capture's JPEG."""
    values: npt.NDArray[np.float32] = frame.astype(np.float32) / 255.0
    values = values ** rng.uniform(0.7, 1.4) * rng.uniform(0.75, 1.15)
    if rng.random() < 0.3:
        values = np.asarray(cv2.GaussianBlur(values, (0, 0), rng.uniform(0.5, 1.5)))
    if rng.random() < 0.3:
        noise = rng.normal(0.0, rng.uniform(0.01, 0.03), values.shape)
        values = values + noise.astype(np.float32)
    shot = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(60, 96))
    ok, encoded = cv2.imencode(".jpg", shot, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()
