"""What the display counts and measures, for its stats line and ``/metrics``."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Final

from shared.log_throttle import LogThrottle, and_more
from shared.metrics import Sample, ServiceMetrics, counters, gauges
from shared.runtime import RateMeter, Stats, format_stats_line

from .ring import FrameRing

__all__ = ["COUNTER_HELP", "GAUGE_HELP", "DisplayMeters"]

log = logging.getLogger(__name__)

WARN_EVERY_S: Final = 5.0
#: Help text of the counters on /metrics (each exposed as emojify_display_<name>_total).
COUNTER_HELP: Final = {
    "frames": "Preview frames received.",
    "preview_missed": "Preview frames that never arrived (gaps in a stream's seq numbers): "
    "the capture's preview queue for this display was full, so the display read too slowly.",
    "results": "Results received (duplicates included).",
    "matched": "Frames paired with their result.",
    "missing": "Frames given up on without a result.",
    "late_results": "Results that came after their frame was counted missing.",
    "unknown_results": "Results whose frame never came.",
    "duplicate_results": "Second and later results of one frame (not written, not drawn).",
    "duplicate_frames": "Frames received twice.",
    "malformed": "Messages that broke the wire format, and undecodable preview frames.",
    "rendered": "Frames drawn into the sinks.",
    "skipped": "Live frames not drawn because a newer one came in the same turn.",
    "waiting": "Frames drawn with a 'waiting for inference' or offline banner.",
    "stale": "Live frames drawn with a stale-result banner.",
    "offline": "Times inference went offline (frames but no results for offline_after_s).",
    "end_of_stream": "End-of-stream messages received.",
}
GAUGE_HELP: Final = {
    "fps_in": "Preview frames received per second.",
    "fps_out": "Frames drawn per second.",
    "results_per_s": "Results received per second.",
    "in_flight": "Frames waiting for their result.",
    "inference_offline": "1 while frames arrive but no result came for offline_after_s.",
    "latency_last_ms": "Time from capture to drawing of the frame drawn last.",
    "streams": "Streams shown (one, or the tiles of the grid).",
}


class DisplayMeters:
    """Counters (its own and the ring's), rates, and the capture-to-drawn latency."""

    def __init__(self, registry: ServiceMetrics, ring: FrameRing) -> None:
        self.stats = Stats()
        self.ring = ring
        self.frames_in = RateMeter()
        self.results_in = RateMeter()
        self.rendered = RateMeter()
        self.latency_last_ms: float | None = None
        self.latency = registry.latency(
            "end_to_end", "From capture (the frame's timestamp) to the frame drawn with its faces."
        )
        self._malformed_log = LogThrottle(WARN_EVERY_S)

    def drawn(self, captured_at_ns: int) -> None:
        """A frame captured at ``captured_at_ns`` (wall clock) was drawn just now."""
        self.stats.increment("rendered")
        self.rendered.mark()
        ms = (time.time_ns() - captured_at_ns) / 1e6
        self.latency_last_ms = ms
        self.latency.observe_ms(ms)

    def malformed(self, where: str, error: Exception) -> None:
        self.stats.increment("malformed")
        held = self._malformed_log.ready()
        if held is not None:
            log.warning("malformed message on %s skipped: %s%s", where, error, and_more(held))

    def counters(self) -> dict[str, int]:
        return {**self.stats.snapshot(), **dataclasses.asdict(self.ring.counts)}

    def stats_line(self, offline: bool) -> str:
        counts = self.counters()
        return format_stats_line(
            {
                "fps_in": self.frames_in.rate(),
                "fps_out": self.rendered.rate(),
                "results_s": self.results_in.rate(),
                "skipped": counts.get("skipped", 0),
                "malformed": counts.get("malformed", 0),
                "p50_ms": self.latency.quantile_ms(0.5),
                "p95_ms": self.latency.quantile_ms(0.95),
                "in_flight": len(self.ring),
                "offline": int(offline),
                "matched": counts["matched"],
                "missing": counts["missing"],
                "preview_missed": counts.get("preview_missed", 0),
                "stale": counts.get("stale", 0),
                "late": counts["late_results"],
                "unknown": counts["unknown_results"],
                "duplicate": counts["duplicate_results"],
            }
        )

    def metrics(self, offline: bool, streams: int) -> list[Sample]:
        counts = {name: 0 for name in COUNTER_HELP}
        counts.update(self.counters())
        values: dict[str, float | int | None] = {
            "fps_in": self.frames_in.rate(),
            "fps_out": self.rendered.rate(),
            "results_per_s": self.results_in.rate(),
            "in_flight": len(self.ring),
            "inference_offline": int(offline),
            "latency_last_ms": self.latency_last_ms,
            "streams": streams,
        }
        return counters(counts, COUNTER_HELP) + gauges(values, GAUGE_HELP)
