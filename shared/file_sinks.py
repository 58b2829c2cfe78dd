"""Where rendered frames and results are stored: a video file and a JSON lines file, shared by
the display and ``commands.analyze``; the protocol every frame sink follows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

from shared.image import ImageU8
from shared.messages import ResultHeader

__all__ = ["FrameSink", "JsonLinesSink", "SinkError", "VideoFileSink"]

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A sink cannot do its job (e.g. the video file cannot be opened)."""


class FrameSink(Protocol):
    """Something that shows or stores rendered frames."""

    def show(self, frame_bgr: ImageU8) -> None: ...

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        """With several streams: one stream's own drawn frame (``show`` gets the grid)."""

    def tick(self) -> None:
        """Called every loop turn, frames or not (a window must keep handling events)."""

    def end_stream(self) -> None:
        """The shown stream has ended."""

    def close(self) -> None: ...


class VideoFileSink:
    """A video file opened at the first frame's size; later sizes are scaled to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size_wh: tuple[int, int] | None = None
        self._finished = False
        self.frames_written = 0

    def show_stream(self, stream_id: str, frame_bgr: ImageU8) -> None:
        pass

    def show(self, frame_bgr: ImageU8) -> None:
        if self._finished:
            return
        height, width = frame_bgr.shape[:2]
        if self._writer is None:
            codec = "mp4v" if self._path.suffix.lower() == ".mp4" else "MJPG"
            self._path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(
                str(self._path), cv2.VideoWriter.fourcc(*codec), self._fps, (width, height)
            )
            if not writer.isOpened():
                raise SinkError(f"video sink cannot open {self._path} with codec {codec}")
            self._writer, self._size_wh = writer, (width, height)
            log.info(
                "video: writing %s (%s, %dx%d, %.1f fps)",
                self._path,
                codec,
                width,
                height,
                self._fps,
            )
        if self._size_wh != (width, height):
            frame_bgr = np.asarray(
                cv2.resize(frame_bgr, self._size_wh, interpolation=cv2.INTER_AREA), np.uint8
            )
        self._writer.write(frame_bgr)
        self.frames_written += 1

    def tick(self) -> None:
        pass

    def end_stream(self) -> None:
        """Finish the file so it is playable now; later frames are not written."""
        if self._writer is not None:
            log.info("video: finished %s (%d frames)", self._path, self.frames_written)
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._finished = True


class JsonLinesSink:
    """One JSON line per result received, flushed at once, whether or not its frame arrived."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as error:
            raise SinkError(f"jsonl sink cannot open {path}: {error}") from error

    def write(self, result: ResultHeader, received_at_ns: int) -> None:
        record = result.model_dump(mode="json")
        record["received_at_ns"] = received_at_ns
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
