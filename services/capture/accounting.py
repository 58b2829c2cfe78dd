"""What capture counts and measures: counters, rates, the hand-out round trip, for the stats
line and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from shared.metrics import Sample, ServiceMetrics, counters, gauges
from shared.runtime import RateMeter, Stats

__all__ = ["COUNTER_HELP", "GAUGE_HELP", "CaptureMeters"]

#: Help text of the counters on /metrics (each exposed as emojify_capture_<name>_total).
COUNTER_HELP: Final = {
    "frames_read": "Frames read from the source.",
    "frames_sent": "Frames handed to workers (redispatched ones included).",
    "replaced": "Live: frames no worker took before a newer one replaced them (or the source "
    "ended).",
    "malformed": "Messages from workers that broke the wire format.",
    "skipped": "Frames that could not be encoded or sent.",
    "unreachable": "Sends that failed because the worker was gone or full.",
    "worker_lost": "Workers given up on (silent for worker_timeout_s, disconnected, restarted).",
    "redispatched": "Frames handed to another worker after theirs was lost (lossless).",
    "lost_in_flight": "Frames in flight on a lost worker (re-queued in lossless, dropped in live).",
    "heartbeats": "Heartbeats received from workers.",
    "evicted": "Frames no longer tracked because a worker held more than max_credit without "
    "saying it finished them.",
}
GAUGE_HELP: Final = {
    "fps_in": "Frames read per second.",
    "fps_out": "Frames handed to workers per second.",
    "in_flight": "Frames handed to workers that have not reported them done.",
    "requeued": "Frames of lost workers waiting for another worker.",
    "workers": "Workers heard from within worker_timeout_s.",
    "workers_with_credit": "Workers that may be sent a frame now.",
    "credit": "Frames workers have asked for in total.",
}

Clock = Callable[[], float]


class CaptureMeters:
    """Counters, rates and the round trip of a frame handed out; safe to read from /metrics."""

    def __init__(self, registry: ServiceMetrics, live: bool, clock: Clock) -> None:
        self.stats = Stats()
        self.live = live
        self.fps_in = RateMeter(clock=clock)
        self.fps_out = RateMeter(clock=clock)
        self.round_trip = registry.latency(
            "round_trip", "From handing a frame to a worker to hearing it is done."
        )
        # Written by the loop, read by the status thread: replaced whole, never mutated.
        self.gauge_values: dict[str, float | int | None] = {}
        self.source_skipped: Callable[[], int] = lambda: 0

    def done(self, span_s: float) -> None:
        """A worker reported a frame done ``span_s`` after it was handed out."""
        self.round_trip.observe_ms(span_s * 1000.0)

    @property
    def dropped(self) -> int:
        """Frames never processed: replaced before any worker took them, or lost (live)."""
        lost = self.stats.get("lost_in_flight") if self.live else 0
        return self.stats.get("replaced") + lost

    def stats_fields(self) -> dict[str, object]:
        counts = self.stats.snapshot()
        return {
            "fps_in": self.fps_in.rate(),
            "fps_out": self.fps_out.rate(),
            "dropped": self.dropped,
            "malformed": counts.get("malformed", 0),
            "p50_ms": self.round_trip.quantile_ms(0.5),
            "p95_ms": self.round_trip.quantile_ms(0.95),
            **self.gauge_values,
            "worker_lost": counts.get("worker_lost", 0),
            "redispatched": counts.get("redispatched", 0),
            "read": counts.get("frames_read", 0),
            "sent": counts.get("frames_sent", 0),
            "skipped": counts.get("skipped", 0) + self.source_skipped(),
            "unreachable": counts.get("unreachable", 0),
        }

    def metrics(self, evicted: int = 0) -> list[Sample]:
        counts = {name: 0 for name in COUNTER_HELP}
        counts.update(self.stats.snapshot())
        counts["evicted"] = evicted
        counts["skipped"] += self.source_skipped()
        values: dict[str, float | int | None] = {
            "fps_in": self.fps_in.rate(),
            "fps_out": self.fps_out.rate(),
            **self.gauge_values,
        }
        return counters(counts, COUNTER_HELP) + gauges(values, GAUGE_HELP)
