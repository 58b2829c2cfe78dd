"""The emotions of each tracked face over a video's time: ``timeline.csv`` and a chart drawn
with OpenCV (no plotting library on a camera host). Pure functions on the result records."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from shared.image import ImageU8
from shared.labels import EMOTIONS
from stages.render import EMOTION_COLORS_BGR

__all__ = ["TimelineRow", "draw_timeline", "timeline_rows", "write_timeline_csv"]

#: Tracks drawn at most (the ones seen in most frames); the CSV has them all.
MAX_TRACKS_DRAWN: Final = 8
WIDTH: Final = 1200
PANEL_H: Final = 150
MARGIN_L: Final = 70
MARGIN_R: Final = 20
LEGEND_H: Final = 40
AXIS_H: Final = 30
_FONT: Final = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class TimelineRow:
    """One tracked face in one frame."""

    time_s: float
    frame: int
    track_id: int
    probabilities: tuple[float, ...]
    label: str


def timeline_rows(records: Iterable[Mapping[str, Any]]) -> list[TimelineRow]:
    """Rows of the result records (the jsonl schema plus ``time_s``) that carry a track id."""
    rows = []
    for record in records:
        for face in record.get("faces", ()):
            if face.get("track_id") is None or record.get("time_s") is None:
                continue
            rows.append(
                TimelineRow(
                    time_s=float(record["time_s"]),
                    frame=int(record["seq"]),
                    track_id=int(face["track_id"]),
                    probabilities=tuple(float(p) for p in face["probabilities"]),
                    label=str(face["label"]),
                )
            )
    return rows


def write_timeline_csv(path: Path, rows: Sequence[TimelineRow]) -> None:
    """``time_s, frame, track_id, <seven probabilities>, label``, one line per row."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "frame", "track_id", *EMOTIONS, "label"])
        for row in rows:
            writer.writerow(
                [
                    f"{row.time_s:.3f}",
                    row.frame,
                    row.track_id,
                    *(f"{p:.4f}" for p in row.probabilities),
                    row.label,
                ]
            )


def _text(image: ImageU8, text: str, xy: tuple[int, int], colour: tuple[int, int, int]) -> None:
    cv2.putText(image, text, xy, _FONT, 0.45, colour, 1, cv2.LINE_AA)


def draw_timeline(rows: Sequence[TimelineRow], duration_s: float) -> ImageU8:
    """One panel per track (the most seen first): the seven probabilities over time, each in
    its emotion's colour, the label shown as a strip under the curves; a legend on top."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row.track_id] = counts.get(row.track_id, 0) + 1
    tracks = sorted(counts, key=lambda t: (-counts[t], t))[:MAX_TRACKS_DRAWN]
    height = LEGEND_H + max(1, len(tracks)) * PANEL_H + AXIS_H
    image = np.full((height, WIDTH, 3), 255, np.uint8)
    x = MARGIN_L
    for emotion in EMOTIONS:
        colour = EMOTION_COLORS_BGR[emotion]
        cv2.line(image, (x, 20), (x + 24, 20), colour, 3)
        _text(image, emotion, (x + 30, 25), (40, 40, 40))
        x += 140
    span = max(duration_s, 1e-6)
    plot_w = WIDTH - MARGIN_L - MARGIN_R

    def x_of(time_s: float) -> int:
        return MARGIN_L + round(plot_w * min(max(time_s / span, 0.0), 1.0))

    if not tracks:
        _text(image, "no tracked face", (MARGIN_L, LEGEND_H + PANEL_H // 2), (90, 90, 90))
    for panel, track in enumerate(tracks):
        top = LEGEND_H + panel * PANEL_H
        bottom = top + PANEL_H - 30
        cv2.rectangle(image, (MARGIN_L, top), (WIDTH - MARGIN_R, bottom), (200, 200, 200), 1)
        _text(image, f"face {track}", (5, (top + bottom) // 2 + 20), (40, 40, 40))
        for fraction in (0.5, 1.0):
            y = round(bottom - fraction * (bottom - top))
            _text(image, f"{fraction:.1f}", (MARGIN_L - 30, y + 4), (120, 120, 120))
        own = sorted((r for r in rows if r.track_id == track), key=lambda r: r.time_s)
        for index, emotion in enumerate(EMOTIONS):
            points = np.array(
                [
                    (x_of(r.time_s), round(bottom - r.probabilities[index] * (bottom - top)))
                    for r in own
                ],
                np.int32,
            )
            if len(points) > 1:
                cv2.polylines(image, [points], False, EMOTION_COLORS_BGR[emotion], 2, cv2.LINE_AA)
            elif len(points) == 1:
                cv2.circle(
                    image, tuple(int(v) for v in points[0]), 3, EMOTION_COLORS_BGR[emotion], -1
                )
        for first, second in zip(own, [*own[1:], None], strict=True):
            end_s = second.time_s if second is not None else first.time_s + span / plot_w
            cv2.rectangle(
                image,
                (x_of(first.time_s), bottom + 6),
                (max(x_of(end_s), x_of(first.time_s) + 1), bottom + 18),
                EMOTION_COLORS_BGR[first.label],
                -1,
            )
    axis_y = height - AXIS_H + 18
    for step in range(6):
        time_s = span * step / 5
        _text(image, f"{time_s:.1f} s", (x_of(time_s) - 15, axis_y), (60, 60, 60))
    return image
