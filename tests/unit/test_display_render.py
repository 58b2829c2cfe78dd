"""Display rendering: the emoji lands on the face box, nothing else changes, input untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.labels import EMOTIONS
from shared.messages import Face
from stages.render import (
    AssetError,
    grid_shape,
    load_sprites,
    placeholder_frame,
    render_frame,
    tile_grid,
    with_banner,
)

pytestmark = pytest.mark.timeout(10)


@pytest.fixture(scope="module")
def sprites() -> dict[str, np.ndarray]:
    return dict(load_sprites())


def flat_frame(height: int = 240, width: int = 320) -> np.ndarray:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:] = (60, 90, 120)
    return frame


def happy_face(box: tuple[int, int, int, int]) -> Face:
    return Face.from_probabilities(box, [0.02, 0.0, 0.03, 0.9, 0.02, 0.02, 0.01])


def test_all_seven_sprites_ship(sprites: dict[str, np.ndarray]) -> None:
    assert sorted(sprites) == sorted(EMOTIONS)
    for emotion, sprite in sprites.items():
        assert sprite.dtype == np.uint8 and sprite.ndim == 3 and sprite.shape[2] == 4, emotion
        assert 64 <= sprite.shape[0] <= 256 and sprite.shape[0] == sprite.shape[1], emotion
        # Transparent corners, opaque middle: a face on a clear background.
        assert sprite[0, 0, 3] == 0 and sprite[sprite.shape[0] // 2, sprite.shape[1] // 2, 3] > 200


@pytest.mark.parametrize(
    "box", [(40, 60, 80, 80), (200, 100, 60, 90), (-20, -10, 70, 70)], ids=["left", "right", "edge"]
)
def test_emoji_drawn_where_the_face_is(
    sprites: dict[str, np.ndarray], box: tuple[int, ...]
) -> None:
    frame = flat_frame()
    before = frame.copy()
    x, y, w, h = box
    out = render_frame(frame, [happy_face((x, y, w, h))], sprites, emoji_opacity=1.0)
    np.testing.assert_array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.any(out != frame, axis=2)
    inside = np.zeros_like(changed)
    # The middle half of the face box: covered by the emoji, whatever its exact scale.
    y0, y1 = max(0, y + h // 4), y + 3 * h // 4
    x0, x1 = max(0, x + w // 4), x + 3 * w // 4
    inside[y0:y1, x0:x1] = True
    assert changed[inside].mean() > 0.9
    # Well away from the face (two box sizes), nothing is drawn.
    far = np.ones_like(changed)
    far[max(0, y - 2 * h) : y + 3 * h, max(0, x - 2 * w) : x + 3 * w] = False
    assert far.any()
    assert not changed[far].any()
    # The emoji is yellow-ish in the middle: more red+green than blue (BGR).
    middle = out[y + h // 2, x + w // 2].astype(int)
    assert middle[2] + middle[1] > 2 * middle[0]


def test_no_faces_no_banner_is_a_copy(sprites: dict[str, np.ndarray]) -> None:
    frame = flat_frame()
    out = render_frame(frame, [], sprites)
    np.testing.assert_array_equal(out, frame)
    assert out is not frame


def test_banner_changes_the_top_only(sprites: dict[str, np.ndarray]) -> None:
    frame = flat_frame()
    out = render_frame(frame, [], sprites, banner="waiting for inference")
    changed_rows = np.flatnonzero(np.any(out != frame, axis=(1, 2)))
    assert changed_rows.size > 0 and changed_rows.max() < 60


def test_emoji_opacity_lets_the_face_show(sprites: dict[str, np.ndarray]) -> None:
    frame = flat_frame()
    face = happy_face((100, 60, 100, 100))
    solid = render_frame(frame, [face], sprites, emoji_opacity=1.0).astype(int)
    faded = render_frame(frame, [face], sprites, emoji_opacity=0.5).astype(int)
    centre = (110, 150)
    assert abs(faded[centre] - frame[centre]).sum() < abs(solid[centre] - frame[centre]).sum()


def test_placeholder_frame() -> None:
    frame = placeholder_frame((160, 120), "waiting for frames")
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert frame.std() > 0


def test_missing_asset_is_reported(tmp_path: Path, sprites: dict[str, np.ndarray]) -> None:
    with pytest.raises(AssetError, match=r"angry\.png is missing.*neutral\.png is missing"):
        load_sprites(tmp_path)


@pytest.mark.parametrize(
    ("count", "shape"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (9, (3, 3))],
)
def test_grid_shape_is_nearly_square(count: int, shape: tuple[int, int]) -> None:
    assert grid_shape(count) == shape


def test_tile_grid_places_each_stream_in_its_cell() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    pictures = [np.full((480, 640, 3), colour, np.uint8) for colour in colours]
    # A smaller, squarer picture is letterboxed into its cell.
    pictures[2] = np.full((100, 100, 3), colours[2], np.uint8)
    grid = tile_grid(pictures, 1280)
    assert grid.shape == (960, 1280, 3)
    assert tuple(grid[240, 320]) == colours[0]
    assert tuple(grid[240, 960]) == colours[1]
    assert tuple(grid[720, 320]) == colours[2]
    assert tuple(grid[485, 10]) == (0, 0, 0)  # letterbox beside the square picture
    assert tuple(grid[720, 960]) == (0, 0, 0)  # the empty fourth cell


def test_tile_grid_of_one_is_the_picture() -> None:
    picture = np.full((48, 64, 3), 7, np.uint8)
    assert tile_grid([picture], 1280) is picture
    with pytest.raises(ValueError, match="at least one"):
        tile_grid([], 1280)


def test_with_banner_marks_the_top_only() -> None:
    picture = np.full((240, 320, 3), 200, np.uint8)
    marked = with_banner(picture, "no frames for 4 s")
    assert not np.array_equal(marked[:20], picture[:20])
    assert np.array_equal(marked[120:], picture[120:])
    assert np.all(picture == 200)
    middle = with_banner(picture, "stream ended", middle=True)
    assert np.array_equal(middle[:60], picture[:60])
    assert not np.array_equal(middle[100:140], picture[100:140])
