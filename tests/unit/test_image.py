"""Image maths: pure functions over tiny arrays, checked against hand-worked tables."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.image import (
    BoxXYWH,
    ImageError,
    ImageU8,
    clip_box_xywh,
    decode_jpeg,
    draw_box_label,
    encode_jpeg,
    expand_box_xywh,
    iou_xywh,
    jpeg_size_wh,
    overlay_rgba,
    resize_to_fit,
    shrink,
    to_gray,
)


@pytest.fixture
def gradient_bgr() -> ImageU8:
    ys, xs = np.mgrid[0:48, 0:64]
    frame = np.stack([xs * 4, ys * 5, (xs + ys) * 2], axis=-1)
    return frame.astype(np.uint8)


def test_jpeg_round_trip(gradient_bgr: ImageU8) -> None:
    data = encode_jpeg(gradient_bgr, quality=95)
    assert data[:2] == b"\xff\xd8"
    assert jpeg_size_wh(data) == (64, 48)
    decoded = decode_jpeg(data)
    assert decoded.shape == (48, 64, 3)
    assert decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - gradient_bgr.astype(int)).mean() < 3


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n"],
    ids=["empty", "text", "soi-only", "truncated-header", "png"],
)
def test_corrupt_jpeg_raises(data: bytes) -> None:
    with pytest.raises(ImageError):
        decode_jpeg(data)


def test_truncated_jpeg_raises(gradient_bgr: ImageU8) -> None:
    data = encode_jpeg(gradient_bgr)
    with pytest.raises(ImageError):
        decode_jpeg(data[: len(data) // 8])


def test_decode_refuses_too_many_pixels(gradient_bgr: ImageU8) -> None:
    with pytest.raises(ImageError, match="pixels"):
        decode_jpeg(encode_jpeg(gradient_bgr), max_pixels=64 * 48 - 1)


def test_encode_refuses_bad_input() -> None:
    with pytest.raises(ImageError):
        encode_jpeg(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ImageError):
        encode_jpeg(np.zeros((4, 4, 3), dtype=np.uint8), quality=0)


@pytest.mark.parametrize(
    ("box", "size_wh", "expected"),
    [
        ((1, 1, 2, 2), (4, 4), (1, 1, 2, 2)),
        ((-2, -1, 4, 4), (4, 4), (0, 0, 2, 3)),
        ((2, 3, 10, 10), (4, 4), (2, 3, 2, 1)),
        ((-10, 0, 20, 4), (4, 4), (0, 0, 4, 4)),
        ((4, 0, 2, 2), (4, 4), None),
        ((0, -3, 2, 3), (4, 4), None),
        ((1, 1, 0, 2), (4, 4), None),
    ],
)
def test_clip_box(box: BoxXYWH, size_wh: tuple[int, int], expected: BoxXYWH | None) -> None:
    assert clip_box_xywh(box, size_wh) == expected


@pytest.mark.parametrize(
    ("box", "margin", "expected"),
    [
        ((4, 4, 2, 2), 0.0, (4, 4, 2, 2)),
        ((4, 4, 2, 2), 0.5, (3, 3, 4, 4)),
        ((0, 0, 4, 2), 0.5, (0, 0, 6, 3)),
        ((8, 8, 4, 4), 0.25, (7, 7, 3, 3)),
    ],
)
def test_expand_box(box: BoxXYWH, margin: float, expected: BoxXYWH) -> None:
    assert expand_box_xywh(box, margin, (10, 10)) == expected


def test_expand_box_outside_raises() -> None:
    with pytest.raises(ImageError):
        expand_box_xywh((20, 20, 2, 2), 0.1, (10, 10))


def test_to_gray_shapes() -> None:
    bgr = np.zeros((3, 5, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # pure red
    gray = to_gray(bgr)
    assert gray.shape == (3, 5)
    assert int(gray[0, 0]) == 76  # 0.299 * 255
    assert to_gray(gray).shape == (3, 5)


@pytest.mark.parametrize(
    ("shape", "max_wh", "expected_shape"),
    [
        ((40, 80, 3), (40, 40), (20, 40, 3)),
        ((10, 10), (40, 40), (10, 10)),
        ((90, 30), (10, 10), (10, 3)),
    ],
)
def test_resize_to_fit(
    shape: tuple[int, ...], max_wh: tuple[int, int], expected_shape: tuple[int, ...]
) -> None:
    assert resize_to_fit(np.zeros(shape, dtype=np.uint8), max_wh).shape == expected_shape


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
@pytest.mark.parametrize(("side", "size_wh"), [(640, (128, 96)), (480, (128, 128))])
def test_shrink_averages_like_inter_area(photo: str, side: int, size_wh: tuple[int, int]) -> None:
    from bench.scenes import photo_bgr

    frame = np.asarray(cv2.resize(photo_bgr(photo), (640, 480), interpolation=cv2.INTER_AREA))
    image = np.ascontiguousarray(frame[:, :side])
    before = image.copy()
    small = shrink(image, size_wh)
    area = cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA)
    assert small.shape == area.shape and small.dtype == np.uint8
    off = np.abs(small.astype(int) - area.astype(int)).mean()
    # Bilinear straight down skips pixels (aliasing): further from the area average.
    linear = cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR)
    assert off < 3.0 and off < np.abs(linear.astype(int) - area.astype(int)).mean()
    assert np.array_equal(image, before)


def test_shrink_to_the_same_size_copies_and_checks_its_size() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    same = shrink(image, (4, 3))
    assert same is not image and np.array_equal(same, image)
    assert shrink(image, (8, 6)).shape == (6, 8)
    with pytest.raises(ImageError, match="positive"):
        shrink(image, (0, 3))


def sprite_4x4(alpha: int) -> ImageU8:
    sprite = np.zeros((4, 4, 4), dtype=np.uint8)
    sprite[..., 0] = 255  # red in RGBA
    sprite[..., 3] = alpha
    return sprite


@pytest.mark.parametrize(
    ("alpha", "expected_bgr"),
    [(255, (0, 0, 255)), (0, (100, 100, 100)), (128, (50, 50, 178))],
)
def test_overlay_blends_alpha(alpha: int, expected_bgr: tuple[int, int, int]) -> None:
    frame = np.full((4, 4, 3), 100, dtype=np.uint8)
    before = frame.copy()
    sprite = sprite_4x4(alpha)
    sprite_before = sprite.copy()
    out = overlay_rgba(frame, sprite, (0, 0, 4, 4))
    assert out is not frame
    assert np.array_equal(frame, before)
    assert np.array_equal(sprite, sprite_before)
    # (255 * a + 100 * (255 - a) + 127) // 255 for a = 128 gives 178 in red, 50 elsewhere.
    assert np.all(out == np.array(expected_bgr, dtype=np.uint8))


def test_overlay_bgra_order() -> None:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    out = overlay_rgba(frame, sprite_4x4(255), (0, 0, 4, 4), channel_order="bgra")
    assert out[0, 0].tolist() == [255, 0, 0]


def test_overlay_box_partly_outside() -> None:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    out = overlay_rgba(frame, sprite_4x4(255), (2, -2, 4, 4))
    painted = out[..., 2] == 255
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:2, 2:4] = True
    assert np.array_equal(painted, expected)


@pytest.mark.parametrize("box", [(10, 10, 4, 4), (-8, 0, 4, 4), (0, 0, 0, 4)])
def test_overlay_box_outside_or_empty_leaves_frame(box: BoxXYWH) -> None:
    frame = np.full((4, 4, 3), 7, dtype=np.uint8)
    assert np.array_equal(overlay_rgba(frame, sprite_4x4(255), box), frame)


def test_overlay_resizes_sprite() -> None:
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    out = overlay_rgba(frame, sprite_4x4(255), (1, 1, 6, 6))
    assert int((out[..., 2] == 255).sum()) == 36


def test_draw_box_label_returns_new_frame(gradient_bgr: ImageU8) -> None:
    before = gradient_bgr.copy()
    out = draw_box_label(gradient_bgr, (10, 20, 20, 20), "happy 0.93", (0, 255, 0))
    assert np.array_equal(gradient_bgr, before)
    assert out.shape == gradient_bgr.shape
    assert not np.array_equal(out, gradient_bgr)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),
        ((0, 0, 2, 2), (1, 0, 2, 2), 2 / 6),
        ((0, 0, 2, 2), (2, 2, 2, 2), 0.0),
        ((0, 0, 4, 4), (1, 1, 2, 2), 4 / 16),
        ((0, 0, 0, 2), (0, 0, 2, 2), 0.0),
    ],
)
def test_iou(a: BoxXYWH, b: BoxXYWH, expected: float) -> None:
    assert iou_xywh(a, b) == pytest.approx(expected)
    assert iou_xywh(b, a) == pytest.approx(expected)
