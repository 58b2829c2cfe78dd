"""Drawing results onto frames: emoji over each face, box, label, banner; pure, never mutates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from shared.image import ImageU8, SizeWH, draw_box_label, overlay_rgba
from shared.labels import EMOTIONS
from shared.messages import Face

__all__ = [
    "EMOTION_COLORS_BGR",
    "AssetError",
    "Sprites",
    "default_asset_dir",
    "grid_shape",
    "load_sprites",
    "placeholder_frame",
    "render_frame",
    "tile_grid",
    "with_banner",
]

#: Emoji images, BGRA (as cv2 reads PNGs), keyed by emotion.
Sprites = Mapping[str, ImageU8]

EMOTION_COLORS_BGR: Final[Mapping[str, tuple[int, int, int]]] = {
    "angry": (40, 40, 230),
    "disgust": (60, 170, 60),
    "fear": (200, 90, 150),
    "happy": (40, 200, 250),
    "sad": (210, 140, 40),
    "surprise": (30, 150, 255),
    "neutral": (190, 190, 190),
}

#: The emoji covers the face box grown by this factor, so the whole head is hidden.
EMOJI_SCALE: Final = 1.15
_FONT: Final = cv2.FONT_HERSHEY_SIMPLEX


class AssetError(RuntimeError):
    """The emoji images are missing or unreadable."""


def default_asset_dir() -> Path:
    """The emoji folder shipped inside this package."""
    return Path(str(resources.files(__package__ or "stages") / "assets" / "emoji"))


def load_sprites(folder: Path | None = None) -> dict[str, ImageU8]:
    """All seven emoji as BGRA images; AssetError naming every missing or bad file."""
    where = default_asset_dir() if folder is None else folder
    sprites: dict[str, ImageU8] = {}
    problems: list[str] = []
    for emotion in EMOTIONS:
        path = where / f"{emotion}.png"
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
            found = "unreadable" if image is None else f"shape {image.shape} {image.dtype}"
            problems.append(f"{path}: expected an RGBA PNG, found {found}")
            continue
        sprites[emotion] = np.asarray(image, dtype=np.uint8)
    if problems:
        raise AssetError(
            "emoji assets: " + "; ".join(problems) + " (run scripts/make_emoji_assets.py)"
        )
    return sprites


def _faded(sprite_bgra: ImageU8, opacity: float) -> ImageU8:
    if opacity >= 1.0:
        return sprite_bgra
    out = sprite_bgra.copy()
    out[:, :, 3] = (out[:, :, 3].astype(np.float32) * opacity).round().astype(np.uint8)
    return out


def _emoji_box(box_xywh: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box_xywh
    side = max(1, round(max(w, h) * EMOJI_SCALE))
    return (x + w // 2 - side // 2, y + h // 2 - side // 2, side, side)


def _text_scale(frame_bgr: ImageU8) -> float:
    """Font scale for banners and captions: readable on small frames, not huge on large."""
    return max(0.45, min(1.0, int(frame_bgr.shape[1]) / 900))


def _text_strip(
    frame_bgr: ImageU8, text: str, top: int, ink_bgr: tuple[int, int, int], scale: float
) -> ImageU8:
    """A copy with a dimmed full-width strip at ``top`` and ``text`` centred on it."""
    out = frame_bgr.copy()
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    strip_h = text_h + baseline + 12
    top = min(max(0, top), max(0, out.shape[0] - strip_h))
    region = out[top : top + strip_h]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)
    origin = (max(4, (out.shape[1] - text_w) // 2), top + 6 + text_h)
    cv2.putText(out, text, origin, _FONT, scale, ink_bgr, thickness, cv2.LINE_AA)
    return out


def render_frame(
    frame_bgr: ImageU8,
    faces: Sequence[Face],
    sprites: Sprites,
    *,
    banner: str | None = None,
    caption: str | None = None,
    emoji_opacity: float = 0.85,
) -> ImageU8:
    """A new frame with each face's emoji, box and 'label NN%'; an optional banner and caption.

    The emoji is centred on the face and a little larger than it, drawn with
    ``emoji_opacity``; the label sits above the box in the emotion's colour.
    """
    out = frame_bgr.copy()
    for face in faces:
        sprite = sprites.get(face.label)
        if sprite is not None and emoji_opacity > 0.0:
            out = overlay_rgba(
                out, _faded(sprite, emoji_opacity), _emoji_box(face.box_xywh), channel_order="bgra"
            )
        color = EMOTION_COLORS_BGR.get(face.label, (255, 255, 255))
        out = draw_box_label(out, face.box_xywh, f"{face.label} {face.score:.0%}", color)
    scale = _text_scale(out)
    if banner:
        out = with_banner(out, banner)
    if caption:
        _, baseline = cv2.getTextSize(caption, _FONT, scale * 0.8, 1)
        origin = (6, out.shape[0] - baseline - 4)
        # A dark outline under light text stays readable on any background.
        cv2.putText(out, caption, origin, _FONT, scale * 0.8, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, caption, origin, _FONT, scale * 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def placeholder_frame(size_wh: SizeWH, text: str) -> ImageU8:
    """A dark frame saying ``text``, shown before the first frame arrives."""
    width, height = int(size_wh[0]), int(size_wh[1])
    frame = np.full((height, width, 3), 32, dtype=np.uint8)
    return _text_strip(frame, text, height // 2 - 20, (200, 200, 200), 0.8)


def with_banner(frame_bgr: ImageU8, text: str, *, middle: bool = False) -> ImageU8:
    """A copy with ``text`` on a dimmed strip across the top (or the middle, which leaves a
    banner at the top readable)."""
    top = frame_bgr.shape[0] // 2 - 20 if middle else 0
    return _text_strip(frame_bgr, text, top, (0, 220, 255), _text_scale(frame_bgr))


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of the most nearly square grid with room for ``count`` pictures."""
    if count < 1:
        raise ValueError(f"count: expected >= 1, found {count}")
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def tile_grid(pictures: Sequence[ImageU8], width: int) -> ImageU8:
    """One BGR picture ``width`` pixels wide showing ``pictures`` row by row in a grid.

    The cells have the first picture's aspect ratio; each picture is scaled to fit its cell,
    keeping its own aspect ratio, and centred on black. A single picture comes back as it is.
    """
    if not pictures:
        raise ValueError("pictures: expected at least one")
    if len(pictures) == 1:
        return pictures[0]
    columns, rows = grid_shape(len(pictures))
    first_h, first_w = pictures[0].shape[:2]
    cell_w = max(1, width // columns)
    cell_h = max(1, round(cell_w * first_h / first_w))
    out = np.zeros((cell_h * rows, cell_w * columns, 3), dtype=np.uint8)
    for index, picture in enumerate(pictures):
        height, width_in = picture.shape[:2]
        scale = min(cell_w / width_in, cell_h / height)
        size_wh = (max(1, round(width_in * scale)), max(1, round(height * scale)))
        scaled = cv2.resize(picture, size_wh, interpolation=cv2.INTER_AREA)
        top = (index // columns) * cell_h + (cell_h - size_wh[1]) // 2
        left = (index % columns) * cell_w + (cell_w - size_wh[0]) // 2
        out[top : top + size_wh[1], left : left + size_wh[0]] = scaled
    return out
