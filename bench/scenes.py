"""Scenes for end-to-end accuracy: FER2013 faces placed on backgrounds, with their truth.

Each scene is a 640x480 BGR frame with 1-3 faces of 60-300 px at varied positions (some partly
out of the frame), on a photo or synthetic background, under drawn lighting, blur, noise and
JPEG quality, as a webcam and the capture service would deliver it; a clip is a few such frames
in which the same faces move a little; ``make_shots`` strings shots together, cut from one to
the next, in which faces move, turn, come closer, enter and leave. A face's truth is the
square it was pasted into (its FER2013 framing) and its label. Pure numpy/OpenCV, seeded.

Two kinds: ``pasted`` squares (the face's 48x48 frame, edges and all, on the background), and
``heads`` (the default of ``bench.accuracy``): each face given the context a camera sees and
FER2013's crops cut away (hair above and beside it, ears, a neck and shoulders in clothes),
its square's border blended into that head, on a background with clutter (frames, text,
lines) whose edges pull a detector's box.
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
    "KINDS",
    "Scene",
    "TruthFace",
    "backgrounds",
    "make_clip",
    "make_scene",
    "make_shots",
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
KINDS: Final = ("heads", "pasted")
#: BGR colours of hair (black, browns, blond, grey, red) and of clothes.
HAIR: Final = (
    (20, 20, 25),
    (30, 45, 70),
    (40, 70, 110),
    (90, 150, 200),
    (150, 150, 155),
    (40, 60, 150),
)
CLOTHES: Final = (
    (40, 40, 40),
    (200, 200, 200),
    (120, 60, 30),
    (40, 40, 150),
    (60, 110, 60),
    (150, 120, 90),
)


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
    #: Faces drawn but mostly hidden: neither a miss when not found nor false when found.
    ignored: tuple[tuple[int, int, int, int], ...] = ()


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


@dataclass(frozen=True)
class Figure:
    """How a head around a face looks: hair, skin and clothes, drawn to the face's square."""

    hair_bgr: tuple[int, int, int]
    #: Hair height above the square and width beside it, as shares of the side (0: none).
    hair_up: float
    hair_wide: float
    clothes_bgr: tuple[int, int, int]
    shoulders_wide: float
    texture_seed: int


def _figure(rng: np.random.Generator) -> Figure:
    bald = rng.random() < 0.2
    return Figure(
        hair_bgr=HAIR[int(rng.integers(len(HAIR)))],
        hair_up=0.0 if bald else float(rng.uniform(0.08, 0.35)),
        hair_wide=0.0 if bald else float(rng.uniform(0.0, 0.2)),
        clothes_bgr=CLOTHES[int(rng.integers(len(CLOTHES)))],
        shoulders_wide=float(rng.uniform(1.0, 1.4)),
        texture_seed=int(rng.integers(2**32)),
    )


def _texture(shape: tuple[int, int], seed: int, scale: float) -> npt.NDArray[np.float32]:
    """Smooth multiplicative noise around 1 (strands, folds), the same for the same seed."""
    noise = np.random.default_rng(seed).normal(1.0, 0.25, shape).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(noise, (0, 0), max(scale, 0.5)), np.float32)


def _skin(face: Image, tint: bool) -> tuple[int, int, int]:
    """The colour of the face's centre, as neck and ears show it (a little darker)."""
    side = face.shape[0]
    grey = float(np.median(face[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4])) * 0.9
    cast = (0.82, 0.9, 1.0) if tint else (1.0, 1.0, 1.0)
    return (int(grey * cast[0]), int(grey * cast[1]), int(grey * cast[2]))


def _draw_figure(
    frame: Image, box: tuple[int, int, int, int], figure: Figure, skin: tuple[int, int, int]
) -> None:
    """Shoulders, neck, ears and hair behind the face's square (the face goes on top)."""
    x, y, side, _ = box
    cx, cy = x + side / 2, y + side / 2
    layer = frame.copy()
    # Shoulders: a wide half-ellipse in clothes below the chin, with a neckline.
    shoulders = (round(cx), round(cy + side * 1.25))
    axes = (round(side * figure.shoulders_wide), round(side * 0.6))
    cv2.ellipse(layer, shoulders, axes, 0, 180, 360, figure.clothes_bgr, -1)
    cv2.rectangle(
        layer,
        (round(cx - side * figure.shoulders_wide), shoulders[1]),
        (round(cx + side * figure.shoulders_wide), round(cy + side * 3)),
        figure.clothes_bgr,
        -1,
    )
    neck = (round(cx - side * 0.2), round(cy + side * 0.2), round(cx + side * 0.2))
    cv2.rectangle(layer, neck[:2], (neck[2], round(cy + side * 0.8)), skin, -1)
    cv2.ellipse(layer, (round(cx), round(cy + side * 0.8)), (round(side * 0.2), round(side * 0.12)),
                0, 0, 180, skin, -1)  # fmt: skip
    for direction in (-1, 1):  # ears at the eyes' height
        ear = (round(cx + direction * side * 0.47), round(cy + side * 0.02))
        cv2.ellipse(layer, ear, (round(side * 0.07), round(side * 0.13)), 0, 0, 360, skin, -1)
    if figure.hair_up:
        top = side * (0.5 + figure.hair_up)
        centre = (round(cx), round(cy - top + side * 0.55))
        hair_axes = (round(side * (0.5 + figure.hair_wide)), round(side * 0.55))
        cv2.ellipse(layer, centre, hair_axes, 0, 180, 360, figure.hair_bgr, -1)
        if figure.hair_wide > 0.08:  # hair down the sides, past the ears
            for direction in (-1, 1):
                x0 = round(cx + direction * side * 0.42)
                x1 = round(cx + direction * side * (0.5 + figure.hair_wide))
                corners = (min(x0, x1), centre[1]), (max(x0, x1), round(cy + side * 0.35))
                cv2.rectangle(layer, *corners, figure.hair_bgr, -1)
    changed = np.any(layer != frame, axis=2)
    if changed.any():
        grain = _texture(frame.shape[:2], figure.texture_seed, side / 60)
        shaded = layer.astype(np.float32) * grain[..., None]
        frame[changed] = np.clip(shaded[changed], 0, 255).astype(np.uint8)


def _blend_mask(side: int) -> npt.NDArray[np.float32]:
    """1 over the face, falling to 0 at its square's border (a rounded square, soft edge), so
    that the square's corners show the head behind rather than a hard edge."""
    u = np.abs(np.linspace(-1.0, 1.0, side, dtype=np.float32))
    radius = (u[None, :] ** 4 + u[:, None] ** 4) ** 0.25
    return np.asarray(np.clip((1.0 - radius) / 0.18, 0.0, 1.0), np.float32)


def _clutter(frame: Image, rng: np.random.Generator) -> None:
    """Edges a room has and a box regressor can be pulled by: picture frames, lines, text."""
    height, width = frame.shape[:2]
    for _ in range(int(rng.integers(1, 6))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.random()
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        if kind < 0.4:
            x1, y1 = x0 + int(rng.integers(60, 300)), y0 + int(rng.integers(60, 300))
            cv2.rectangle(frame, (x0, y0), (x1, y1), colour, int(rng.integers(2, 12)))
        elif kind < 0.7:
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(frame, (x0, y0), (x1, y1), colour, int(rng.integers(1, 6)))
        else:
            letters = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 12))))
            cv2.putText(frame, letters, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX,
                        float(rng.uniform(0.5, 2.0)), colour, int(rng.integers(1, 4)))  # fmt: skip


def _paste(
    frame: Image,
    face_gray: Image,
    box: tuple[int, int, int, int],
    tint: bool,
    roll_deg: float,
    *,
    blend: bool = False,
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
    if x1 <= x0 or y1 <= y0:
        return
    inside = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    if blend:
        alpha = _blend_mask(side)[inside][..., None]
        under = frame[y0:y1, x0:x1].astype(np.float32)
        face_bgr[inside] = face_bgr[inside] * alpha + under * (1.0 - alpha)
    frame[y0:y1, x0:x1] = np.clip(face_bgr[inside], 0, 255)


def make_scene(
    rng: np.random.Generator,
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    photos: Sequence[Image],
    *,
    sides: tuple[int, int] = (60, 300),
    roll_deg: float = 0.0,
    kind: str = "pasted",
) -> Scene:
    """One scene with 1-3 of ``faces`` (N, 48, 48[, 1]) drawn at random, as a JPEG; each face
    tilted by up to ``roll_deg`` either way; ``kind`` is one of KINDS."""
    return make_clip(rng, faces, labels, photos, 1, sides=sides, roll_deg=roll_deg, kind=kind)[0]


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
    kind: str = "pasted",
) -> list[Scene]:
    """``frames`` scenes of the same faces on the same background, each face moving by up to
    ``step_px`` per frame and tilted by up to ``roll_deg`` either way (the first frame is
    ``make_scene``'s); ``kind`` is one of KINDS."""
    if kind not in KINDS:
        raise ValueError(f"scene kind {kind!r}: expected one of {', '.join(KINDS)}")
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
    heads = kind == "heads"
    figures = [_figure(rng) for _ in truth] if heads else []
    if heads:
        _clutter(background, rng)
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
        grey = [faces[face.index].reshape(faces.shape[1:3]) for face in truth]
        # Every body first, then every face: a neighbour's shoulder never hides a face.
        for face, figure, tint, image in zip(truth, figures, tints, grey, strict=False):
            _draw_figure(frame, face.box_xywh, figure, _skin(image, tint))
        for face, tint, roll, image in zip(truth, tints, rolls, grey, strict=True):
            _paste(frame, image, face.box_xywh, tint, roll, blend=heads)
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


@dataclass
class _Mover:
    """A face on the move through a shot: where it is, how it moves, when it is on screen."""

    index: int
    x: float
    y: float
    side: float
    vx: float
    vy: float
    grow: float
    roll: float
    turn: float
    enters: int
    leaves: int
    tint: bool
    figure: Figure


def _mover(rng: np.random.Generator, count: int, frames: int, sides: tuple[int, int]) -> _Mover:
    width, height = FRAME_WH
    side = math.exp(rng.uniform(math.log(sides[0]), math.log(sides[1])))
    late, early = rng.random() < 0.3, rng.random() < 0.3
    speed = rng.uniform(0.0, 12.0)
    heading = rng.uniform(0.0, 2 * math.pi)
    return _Mover(
        index=int(rng.integers(count)),
        x=float(rng.uniform(0, width - side)),
        y=float(rng.uniform(0, height - side)),
        side=side,
        vx=speed * math.cos(heading),
        vy=speed * math.sin(heading),
        grow=float(rng.uniform(-0.01, 0.015)),
        roll=float(rng.uniform(-10, 10)),
        turn=float(rng.uniform(-2, 2)),
        enters=int(rng.integers(1, frames // 2)) if late else 0,
        leaves=int(rng.integers(frames // 2, frames)) if early else frames,
        tint=bool(rng.random() < 0.5),
        figure=_figure(rng),
    )


def _step(mover: _Mover, sides: tuple[int, int]) -> None:
    """One frame on: move (bouncing off the frame's sides), come closer or go away, turn."""
    width, height = FRAME_WH
    mover.side = min(max(mover.side * (1 + mover.grow), sides[0]), sides[1])
    mover.x += mover.vx
    mover.y += mover.vy
    if not 0 <= mover.x <= width - mover.side:
        mover.vx = -mover.vx
        mover.x = min(max(mover.x, 0.0), width - mover.side)
    if not 0 <= mover.y <= height - mover.side:
        mover.vy = -mover.vy
        mover.y = min(max(mover.y, 0.0), max(height - mover.side, 0.0))
    mover.roll = min(max(mover.roll + mover.turn, -20.0), 20.0)


def make_shots(
    rng: np.random.Generator,
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    photos: Sequence[Image],
    shots: int,
    *,
    frames: tuple[int, int] = (8, 24),
    sides: tuple[int, int] = (60, 240),
    kind: str = "heads",
) -> tuple[list[Scene], list[int]]:
    """Shots of ``frames`` frames each (drawn per shot), one after another with a cut between
    them: new background, new faces, new camera. In a shot 1-3 faces move by up to 12 px a
    frame, come closer or go away by up to 1.5% a frame, turn by up to 2 degrees a frame
    (within +-20), and some enter late or leave early; a face mostly hidden behind a later one
    is left out of the truth and kept as ignored (found or not, it does not count). Returns
    the frames and the index of each shot's first frame."""
    if kind not in KINDS:
        raise ValueError(f"scene kind {kind!r}: expected one of {', '.join(KINDS)}")
    out: list[Scene] = []
    starts: list[int] = []
    for _ in range(shots):
        length = int(rng.integers(frames[0], frames[1] + 1))
        background = _background(rng, photos)
        if kind == "heads":
            _clutter(background, rng)
        movers = [_mover(rng, len(faces), length, sides) for _ in range(int(rng.integers(1, 4)))]
        camera_seed = int(rng.integers(2**32))
        starts.append(len(out))
        for number in range(length):
            frame = background.copy()
            shown = [m for m in movers if m.enters <= number < m.leaves]
            boxes = [(round(m.x), round(m.y), round(m.side), round(m.side)) for m in shown]
            grey = [faces[m.index].reshape(faces.shape[1:3]) for m in shown]
            if kind == "heads":
                for mover, box, image in zip(shown, boxes, grey, strict=True):
                    _draw_figure(frame, box, mover.figure, _skin(image, mover.tint))
            for mover, box, image in zip(shown, boxes, grey, strict=True):
                _paste(frame, image, box, mover.tint, mover.roll, blend=kind == "heads")
            hidden = [_hidden(box, boxes[i + 1 :]) for i, box in enumerate(boxes)]
            truth = [
                TruthFace(box, int(labels[mover.index]), mover.index)
                for mover, box, gone in zip(shown, boxes, hidden, strict=True)
                if not gone
            ]
            ignored = tuple(box for box, gone in zip(boxes, hidden, strict=True) if gone)
            out.append(
                Scene(_shoot(frame, np.random.default_rng(camera_seed)), tuple(truth), ignored)
            )
            for mover in movers:
                _step(mover, sides)
    return out, starts


def _hidden(box: tuple[int, int, int, int], above: Sequence[tuple[int, int, int, int]]) -> bool:
    """Whether the squares drawn after ``box`` cover more than a third of it."""
    x, y, side, _ = box
    covered = np.zeros((side, side), bool)
    for ox, oy, oside, _ in above:
        x0, y0 = max(ox - x, 0), max(oy - y, 0)
        x1, y1 = min(ox + oside - x, side), min(oy + oside - y, side)
        if x1 > x0 and y1 > y0:
            covered[y0:y1, x0:x1] = True
    return bool(covered.mean() > 1 / 3)
