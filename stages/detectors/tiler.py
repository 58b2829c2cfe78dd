"""The tiler: the frame cut into overlapping square tiles at two sizes, so that BlazeFace, which
sees a whole 640x480 frame at a fifth of its scale, finds faces down to about 60 px.

Pure image maths. Per tile size the frame is shrunk once (``shared.image.shrink``) to the
scale the model sees its tiles at, and every tile is cut from that copy (a third of the time of
resizing each on its own); the whole frame is shrunk from the first, coarsest, copy. The copies
are kept: the second look cuts its squares from the smallest that is sharp enough.
"""

from __future__ import annotations

from typing import Final

from shared.image import ImageU8, shrink

from .blazeface_pass import Region

__all__ = ["TILE_FRACTIONS", "tile_jobs", "tile_regions"]

#: Tile sizes, as shares of the frame's short side: on a 640x480 frame, two tiles of 480 px
#: (the model sees 0.27 of the frame's scale) and six of 320 px (0.4; the whole frame: 0.2).
#: Faces of 120-200 px fall between the whole frame's scale and the small tiles' (too large for
#: those, or cut by each of them); the large tiles took recall on 300 scenes of train/ faces
#: from 0.900 to 0.922 (100-200 px faces: 0.936 to 0.980) for 0.003 more false a frame.
TILE_FRACTIONS: Final = (1.0, 2 / 3)


def tile_regions(
    width: int, height: int, fraction: float = 2 / 3
) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles, each ``fraction`` of the frame's short side, that cover it with
    half a tile of overlap: at two thirds, small faces come to the model at 1.5 times the full
    frame's scale and more (a 60 px face in a 640x480 frame is 24 px of the 128 px input
    instead of 12)."""
    side = max(1, round(fraction * min(width, height)))
    stride = max(1, side // 2)

    def starts(extent: int) -> list[int]:
        count = max(1, -(-(extent - side) // stride) + 1)
        return sorted({round(i * (extent - side) / max(count - 1, 1)) for i in range(count)})

    return [(x, y, side, side) for y in starts(height) for x in starts(width)]


def tile_jobs(
    frame_bgr: ImageU8, input_size: int, fractions: tuple[float, ...] = TILE_FRACTIONS
) -> tuple[list[tuple[float, ImageU8]], list[Region]]:
    """The frame's copies as (scale, image), the frame itself first, and the regions to run:
    the whole frame (from the first copy) and every tile of every size."""
    height, width = frame_bgr.shape[:2]
    sources: list[tuple[float, ImageU8]] = [(1.0, frame_bgr)]
    jobs: list[Region] = []
    for level, fraction in enumerate(fractions):
        tiles = tile_regions(width, height, fraction)
        scale = input_size / tiles[0][2]
        size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
        source = shrink(frame_bgr, size_wh)
        sources.append((scale, source))
        regions = [(0, 0, width, height), *tiles] if level == 0 else tiles
        jobs += [Region(source, scale, region) for region in regions]
    return sources, jobs
