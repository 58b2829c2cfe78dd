"""What the frame sinks show: a lone stream frame by frame, several streams as a grid."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Final

from shared.file_sinks import FrameSink
from shared.image import ImageU8
from stages.render import tile_grid, with_banner

__all__ = ["Screen"]

log = logging.getLogger(__name__)

#: In the grid, a stream without frames for this long is marked, and forgotten after FORGET_S.
TILE_STALE_S: Final = 3.0
TILE_FORGET_S: Final = 60.0


@dataclasses.dataclass
class _Tile:
    """The latest drawn frame of one stream, for the grid."""

    picture: ImageU8
    drawn_at: float
    ended: bool = False


class Screen:
    """Sends drawn frames to the sinks: as they are for one stream, as a grid for several."""

    def __init__(self, sinks: Sequence[FrameSink], grid_width: int) -> None:
        self.sinks = list(sinks)
        self.grid_width = grid_width
        self.tiles: dict[str, _Tile] = {}
        self.grid_due = False
        self.grid_drawn_at = 0.0

    @property
    def streams(self) -> int:
        return len(self.tiles)

    def show(self, stream_id: str, picture: ImageU8, now: float) -> None:
        """Every drawn frame of a lone stream goes to the sinks as it is; with several
        streams, it becomes that stream's tile and the grid goes out once per loop turn."""
        if stream_id not in self.tiles:
            # A new stream starts a new show: streams that ended before leave the grid.
            for ended in [name for name, tile in self.tiles.items() if tile.ended]:
                del self.tiles[ended]
        self.tiles[stream_id] = _Tile(picture, now)
        if len(self.tiles) == 1:
            for sink in self.sinks:
                sink.show(picture)
        else:
            self.grid_due = True
            for sink in self.sinks:
                sink.show_stream(stream_id, picture)

    def stream_ended(self, stream_id: str, now: float) -> None:
        """The last picture of an ended stream stays while others run, then the show ends."""
        tile = self.tiles.get(stream_id)
        if tile is None:
            return
        tile.ended = True
        self.grid_due = True
        if all(t.ended for t in self.tiles.values()):
            # The last stream shown ended: the final picture stays (and a video file ends).
            if len(self.tiles) > 1:
                self.show_grid(now, force=True)
            for sink in self.sinks:
                sink.end_stream()
        else:
            # Others go on: the grid keeps to the streams that are still running.
            del self.tiles[stream_id]

    def show_grid(self, now: float, force: bool = False) -> None:
        """Send the grid of all streams to the sinks if a tile changed (or a stale one needs
        its age redrawn); forget streams silent for TILE_FORGET_S."""
        for stream_id, tile in list(self.tiles.items()):
            if now - tile.drawn_at >= TILE_FORGET_S:
                log.info(
                    "stream %s: no frame for %.0f s, removed from the grid",
                    stream_id,
                    now - tile.drawn_at,
                )
                del self.tiles[stream_id]
                self.grid_due = True
        if not self.tiles or (len(self.tiles) == 1 and not self.grid_due):
            # A lone stream's frames went to the sinks as they were drawn.
            return
        stale = len(self.tiles) > 1 and any(
            not tile.ended and now - tile.drawn_at >= TILE_STALE_S for tile in self.tiles.values()
        )
        if not (force or self.grid_due or (stale and now - self.grid_drawn_at >= 1.0)):
            return
        pictures = []
        for _, tile in sorted(self.tiles.items()):
            age_s = now - tile.drawn_at
            # In the middle: the tile's own banner (e.g. "inference offline") stays readable.
            if tile.ended:
                pictures.append(with_banner(tile.picture, "stream ended", middle=True))
            elif age_s >= TILE_STALE_S:
                text = f"no frames for {age_s:.0f} s"
                pictures.append(with_banner(tile.picture, text, middle=True))
            else:
                pictures.append(tile.picture)
        grid = tile_grid(pictures, self.grid_width)
        for sink in self.sinks:
            sink.show(grid)
        self.grid_due = False
        self.grid_drawn_at = now

    def tick(self, now: float) -> None:
        """Once per loop turn: the grid if due, and every sink's own turn."""
        self.show_grid(now)
        for sink in self.sinks:
            sink.tick()
