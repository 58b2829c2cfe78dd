"""Pure image maths shared by the worker, the display and training: no function mutates input."""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "BoxXYWH",
    "ImageError",
    "ImageU8",
    "SizeHW",
    "SizeWH",
    "box_areas_xyxy",
    "clip_box_xywh",
    "decode_jpeg",
    "draw_box_label",
    "encode_jpeg",
    "expand_box_xywh",
    "iou_matrix_xywh",
    "iou_matrix_xyxy",
    "iou_xywh",
    "jpeg_size_wh",
    "overlap_matrix_xyxy",
    "overlay_rgba",
    "resize_to_fit",
    "shrink",
    "to_gray",
]

ImageU8: TypeAlias = npt.NDArray[np.uint8]
BoxXYWH: TypeAlias = tuple[int, int, int, int]
SizeWH: TypeAlias = tuple[int, int]
SizeHW: TypeAlias = tuple[int, int]

DEFAULT_MAX_PIXELS: Final = 8192 * 8192

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_STANDALONE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD8)})


class ImageError(ValueError):
    """An image that cannot be decoded, encoded or cut as asked."""


def _as_box(box_xywh: tuple[int, int, int, int]) -> BoxXYWH:
    # Detectors hand out numpy integers; keep plain ints so boxes go into messages unchanged.
    return (int(box_xywh[0]), int(box_xywh[1]), int(box_xywh[2]), int(box_xywh[3]))


def _check_u8(image: npt.NDArray[np.generic], name: str, channels: tuple[int, ...]) -> None:
    if image.dtype != np.uint8:
        raise ImageError(f"{name}: expected dtype uint8, found {image.dtype}")
    found = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else -1)
    if found not in channels or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(
            f"{name}: expected a non-empty HxW image with {channels} channels, found {image.shape}"
        )


def jpeg_size_wh(data: bytes) -> SizeWH:
    """Width and height a JPEG declares, read from its header without decoding it."""
    if data[:2] != b"\xff\xd8":
        raise ImageError(f"not a JPEG: expected FF D8 at the start, found {data[:2].hex(' ')!r}")
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            raise ImageError(f"corrupt JPEG: expected a marker at byte {index}")
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in _STANDALONE_MARKERS:
            index += 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if marker in _SOF_MARKERS:
            if index + 9 > len(data):
                break
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            break
        index += 2 + length
    raise ImageError("corrupt JPEG: no frame header (SOF) found")


def decode_jpeg(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageU8:
    """Decode JPEG bytes to a BGR image; raises ImageError on empty, corrupt or oversize data."""
    if not data:
        raise ImageError("empty JPEG data")
    width, height = jpeg_size_wh(data)
    # Check the declared size first so a tiny file cannot make us allocate gigabytes.
    if width * height > max_pixels or width == 0 or height == 0:
        raise ImageError(
            f"JPEG size {width}x{height}: expected 1..{max_pixels} pixels, found {width * height}"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    frame_bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if frame_bgr is None:
        raise ImageError(f"corrupt JPEG: OpenCV could not decode {len(data)} bytes")
    return np.asarray(frame_bgr, dtype=np.uint8)


def encode_jpeg(frame_bgr: ImageU8, quality: int = 85) -> bytes:
    """Encode a BGR (or grayscale) image as JPEG bytes."""
    _check_u8(frame_bgr, "frame_bgr", (1, 3))
    if not 1 <= quality <= 100:
        raise ImageError(f"JPEG quality: expected 1..100, found {quality}")
    ok, buffer = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError(f"OpenCV could not encode an image of shape {frame_bgr.shape}")
    return bytes(buffer.tobytes())


def to_gray(frame_bgr: ImageU8) -> ImageU8:
    """Grayscale copy of a BGR, BGRA or already gray image."""
    _check_u8(frame_bgr, "frame_bgr", (1, 3, 4))
    if frame_bgr.ndim == 2:
        return frame_bgr.copy()
    if frame_bgr.shape[2] == 1:
        return frame_bgr[:, :, 0].copy()
    code = cv2.COLOR_BGR2GRAY if frame_bgr.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return np.asarray(cv2.cvtColor(frame_bgr, code), dtype=np.uint8)


def clip_box_xywh(box_xywh: BoxXYWH, size_wh: SizeWH) -> BoxXYWH | None:
    """The part of the box inside an image of ``size_wh``; None when nothing is left."""
    x, y, w, h = _as_box(box_xywh)
    width, height = int(size_wh[0]), int(size_wh[1])
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def expand_box_xywh(box_xywh: BoxXYWH, margin: float, size_wh: SizeWH) -> BoxXYWH:
    """Grow the box by ``margin`` of its width/height on every side, clipped to ``size_wh``.

    Raises ImageError when the box lies entirely outside the image.
    """
    if not margin >= 0.0:
        raise ImageError(f"margin: expected >= 0, found {margin}")
    x, y, w, h = _as_box(box_xywh)
    dx, dy = round(w * margin), round(h * margin)
    grown = (x - dx, y - dy, w + 2 * dx, h + 2 * dy)
    clipped = clip_box_xywh(grown, size_wh)
    if clipped is None:
        raise ImageError(f"box {box_xywh} lies outside an image of size_wh={tuple(size_wh)}")
    return clipped


def resize_to_fit(image: ImageU8, max_wh: SizeWH) -> ImageU8:
    """A copy scaled down (never up), keeping the aspect ratio, to fit inside ``max_wh``."""
    height, width = image.shape[:2]
    max_w, max_h = int(max_wh[0]), int(max_wh[1])
    if max_w <= 0 or max_h <= 0:
        raise ImageError(f"max_wh: expected positive sides, found {max_wh}")
    scale = min(max_w / width, max_h / height)
    if scale >= 1.0:
        return image.copy()
    size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def shrink(image: ImageU8, size_wh: SizeWH) -> ImageU8:
    """The image brought to ``size_wh`` (a copy): halved by area averaging while a half is
    still at least that size, then bilinear for the last step (a factor under 2, where
    bilinear drops no pixel; bilinear alone to a larger size). On photos, within one to three
    grey levels of ``INTER_AREA`` on average, and several times faster: OpenCV averages areas
    quickly only at exactly 2x (a 640x480 frame to 128x96: 0.19 ms against 0.44; a 480 px
    square to 128: 0.13 against 1.0)."""
    width, height = int(size_wh[0]), int(size_wh[1])
    if width <= 0 or height <= 0:
        raise ImageError(f"size_wh: expected positive sides, found {size_wh}")
    out = image
    while out.shape[1] // 2 >= width and out.shape[0] // 2 >= height:
        half_wh = (out.shape[1] // 2, out.shape[0] // 2)
        out = np.asarray(cv2.resize(out, half_wh, interpolation=cv2.INTER_AREA), np.uint8)
    if out.shape[:2] != (height, width):
        out = np.asarray(cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR), np.uint8)
    return out if out is not image else image.copy()


def overlay_rgba(
    frame_bgr: ImageU8,
    sprite_rgba: ImageU8,
    box_xywh: BoxXYWH,
    channel_order: Literal["rgba", "bgra"] = "rgba",
) -> ImageU8:
    """A new frame with the sprite resized to the box and alpha-blended over it.

    The sprite's channels are RGBA (as PIL and most PNG tools give them); pass
    ``channel_order="bgra"`` for a sprite read with ``cv2.imread(..., IMREAD_UNCHANGED)``.
    Parts of the box outside the frame are cut off.
    """
    _check_u8(frame_bgr, "frame_bgr", (3,))
    _check_u8(sprite_rgba, "sprite_rgba", (4,))
    out = frame_bgr.copy()
    x, y, w, h = _as_box(box_xywh)
    if w <= 0 or h <= 0:
        return out
    frame_h, frame_w = frame_bgr.shape[:2]
    visible = clip_box_xywh((x, y, w, h), (frame_w, frame_h))
    if visible is None:
        return out
    sprite = sprite_rgba
    if sprite.shape[:2] != (h, w):
        shrinking = w < sprite.shape[1] and h < sprite.shape[0]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        sprite = np.asarray(cv2.resize(sprite, (w, h), interpolation=interpolation), np.uint8)
    vx, vy, vw, vh = visible
    part = sprite[vy - y : vy - y + vh, vx - x : vx - x + vw]
    colour = part[:, :, 2::-1] if channel_order == "rgba" else part[:, :, :3]
    alpha = part[:, :, 3:4].astype(np.uint32)
    under = out[vy : vy + vh, vx : vx + vw].astype(np.uint32)
    # Integer blend with rounding: exact, and the same result on every platform.
    blended = (colour.astype(np.uint32) * alpha + under * (255 - alpha) + 127) // 255
    out[vy : vy + vh, vx : vx + vw] = blended.astype(np.uint8)
    return out


def draw_box_label(
    frame_bgr: ImageU8, box_xywh: BoxXYWH, text: str, color_bgr: tuple[int, int, int]
) -> ImageU8:
    """A new frame with the box outlined and ``text`` on a filled strip above it (or inside)."""
    _check_u8(frame_bgr, "frame_bgr", (3,))
    out = frame_bgr.copy()
    x, y, w, h = _as_box(box_xywh)
    color = (int(color_bgr[0]), int(color_bgr[1]), int(color_bgr[2]))
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), color, 2)
    if text:
        font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
        strip_h = text_h + baseline + 4
        top = y - strip_h if y - strip_h >= 0 else y
        cv2.rectangle(out, (x, top), (x + text_w + 4, top + strip_h), color, cv2.FILLED)
        # Dark text on light colours, light on dark, so the label stays readable.
        luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        ink = (0, 0, 0) if luma > 128 else (255, 255, 255)
        origin = (x + 2, top + text_h + 2)
        cv2.putText(out, text, origin, font, scale, ink, thickness, cv2.LINE_AA)
    return out


def box_areas_xyxy(boxes_xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Area of every box (N, 4+), corners ``x0, y0, x1, y1`` in the first four columns; 0.0
    for an empty one."""
    boxes = np.atleast_2d(np.asarray(boxes_xyxy, dtype=np.float64))[:, :4]
    areas: npt.NDArray[np.float64] = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None).prod(axis=1)
    return areas


def overlap_matrix_xyxy(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Area that every box in ``a`` (N, 4+) shares with every box in ``b`` (M, 4+): (N, M)."""
    a = np.atleast_2d(np.asarray(a_xyxy, dtype=np.float64))[:, :4]
    b = np.atleast_2d(np.asarray(b_xyxy, dtype=np.float64))[:, :4]
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap: npt.NDArray[np.float64] = np.clip(bottom_right - top_left, 0.0, None).prod(axis=2)
    return overlap


def iou_matrix_xyxy(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of every box in ``a`` (N, 4+) with every box in ``b`` (M, 4+), corners ``x0, y0,
    x1, y1`` in the first four columns: shape (N, M), 0.0 where a box is empty."""
    overlap = overlap_matrix_xyxy(a_xyxy, b_xyxy)
    union = box_areas_xyxy(a_xyxy)[:, None] + box_areas_xyxy(b_xyxy)[None, :] - overlap
    iou: npt.NDArray[np.float64] = np.where(
        union > 0, overlap / np.where(union > 0, union, 1.0), 0.0
    )
    return iou


def iou_matrix_xywh(a_xywh: npt.ArrayLike, b_xywh: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``iou_matrix_xyxy`` for boxes given as ``x, y, w, h``."""

    def corners(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        xywh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)

    return iou_matrix_xyxy(corners(a_xywh), corners(b_xywh))


def iou_xywh(a: BoxXYWH, b: BoxXYWH) -> float:
    """Intersection over union of two boxes; 0.0 when either is empty."""
    return float(iou_matrix_xywh([_as_box(a)], [_as_box(b)])[0, 0])
