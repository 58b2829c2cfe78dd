"""What the live page shows beside the video: per stream, the faces of the frame drawn last with
their seven probabilities, each tracked face's recent emotions, and the display's own figures.

Written by the display loop, read by the HTTP threads (under a lock); ``view`` returns plain
data for ``/state.json``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from shared.http_server import Request, Response, Route, query, reply
from shared.labels import EMOTIONS
from shared.messages import Face, FrameHeader, ResultHeader
from stages.render import EMOTION_COLORS_BGR

__all__ = ["HISTORY_S", "PageState", "state_route"]

#: How far back a face's timeline reaches.
HISTORY_S: Final = 30.0
#: Points kept per face at most (several per second at 30 fps).
MAX_POINTS: Final = 300
#: A worker whose result came within this long counts as online.
WORKER_ONLINE_S: Final = 5.0


@dataclass
class _Stream:
    seq: int | None = None
    faces: tuple[Face, ...] = ()
    drawn_at: float = 0.0
    history: dict[str, deque[tuple[float, tuple[float, ...]]]] = field(default_factory=dict)


def _face_key(face: Face, index: int) -> str:
    return f"track {face.track_id}" if face.track_id is not None else f"face {index + 1}"


class PageState:
    """The page's data, kept up to date by the display loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._workers: dict[str, float] = {}

    def drawn(self, header: FrameHeader, faces: Sequence[Face]) -> None:
        """The frame ``header`` was drawn with ``faces``."""
        with self._lock:
            stream = self._streams.setdefault(header.stream_id, _Stream())
            stream.seq, stream.faces, stream.drawn_at = header.seq, tuple(faces), self._clock()

    def result(self, result: ResultHeader) -> None:
        """A result came: its faces join their timelines, its worker counts as online."""
        now = self._clock()
        with self._lock:
            self._workers[result.worker_id] = now
            if result.error is not None:
                return
            stream = self._streams.setdefault(result.stream_id, _Stream())
            at = round(now - self._started, 3)
            for index, face in enumerate(result.faces):
                points = stream.history.setdefault(_face_key(face, index), deque(maxlen=MAX_POINTS))
                points.append((at, tuple(round(p, 4) for p in face.probabilities)))
            for key in list(stream.history):
                points = stream.history[key]
                while points and points[0][0] < at - HISTORY_S:
                    points.popleft()
                if not points:
                    del stream.history[key]

    def view(self, stream_id: str | None, figures: Mapping[str, Any]) -> dict[str, Any]:
        """The page's data for ``stream_id`` (default: the first stream by name)."""
        now = self._clock()
        with self._lock:
            names = sorted(self._streams)
            chosen = stream_id if stream_id in self._streams else (names[0] if names else None)
            stream = self._streams.get(chosen) if chosen is not None else None
            online = sum(1 for at in self._workers.values() if now - at <= WORKER_ONLINE_S)
            faces = [] if stream is None else list(stream.faces)
            history = {} if stream is None else {k: list(v) for k, v in stream.history.items()}
            seq = None if stream is None else stream.seq
        return {
            "labels": list(EMOTIONS),
            "streams": names,
            "stream": chosen,
            "seq": seq,
            "now": round(now - self._started, 3),
            "history_s": HISTORY_S,
            "faces": [
                {
                    "key": _face_key(face, index),
                    "box_xywh": list(face.box_xywh),
                    "label": face.label,
                    "probabilities": [round(p, 4) for p in face.probabilities],
                }
                for index, face in enumerate(faces)
            ],
            "timelines": history,
            "figures": {**figures, "workers_online": online},
        }


#: The emotions' colours as the page draws them (the same as on the video).
CSS_COLORS: Final = {
    emotion: "#{:02x}{:02x}{:02x}".format(*reversed(bgr))
    for emotion, bgr in EMOTION_COLORS_BGR.items()
}


def state_route(page: PageState, figures: Callable[[], Mapping[str, Any]]) -> Route:
    """``/state.json?stream=``: ``page.view`` of that stream with ``figures()`` and colours."""

    async def serve(request: Request) -> Response:
        view = page.view(query(request).get("stream"), figures())
        view["colors"] = CSS_COLORS
        return reply(HTTPStatus.OK, "application/json", json.dumps(view).encode())

    return serve
