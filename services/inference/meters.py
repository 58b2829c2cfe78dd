"""The worker's counters, rates and per-stage latencies, and its periodic stats line."""

from __future__ import annotations

from typing import Final

from shared.messages import ResultHeader
from shared.runtime import LatencyWindow, RateMeter, Stats, format_stats_line

__all__ = ["COUNTERS", "STAGES", "WorkerMeters"]

#: Counter names in Stats: frames received, results sent, faces classified, malformed
#: messages, frames whose JPEG did not decode, results the display did not take, credit
#: re-requests after silence, models swapped in while running, new model files refused.
COUNTERS: Final = (
    "frames",
    "results",
    "faces",
    "malformed",
    "corrupt",
    "results_dropped",
    "credit_resends",
    "reloads",
    "reload_failed",
)
STAGES: Final = ("decode", "detect", "classify")


class WorkerMeters:
    """Everything the stats line reports; ``stats`` is shared with the result sender."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.stats = Stats()
        self._fps_in = RateMeter(window_s)
        self._fps_out = RateMeter(window_s)
        self._faces = RateMeter(window_s)
        self._total = LatencyWindow()
        self._stages = {stage: LatencyWindow() for stage in STAGES}

    def frame_in(self) -> None:
        self.stats.increment("frames")
        self._fps_in.mark()

    def result_out(self, result: ResultHeader, sent: bool) -> None:
        timings = result.timings
        self._total.add(timings.total_ms)
        self._stages["decode"].add(timings.decode_ms)
        if result.error is None:
            self._stages["detect"].add(timings.detect_ms)
        if result.faces:
            # Frames without faces skip the model; their 0 ms would hide its real cost.
            self._stages["classify"].add(timings.classify_ms)
            self.stats.increment("faces", len(result.faces))
            self._faces.mark(len(result.faces))
        if sent:
            self.stats.increment("results")
            self._fps_out.mark()

    def line(self, credit_held: int) -> str:
        counts = self.stats.snapshot()
        fields: dict[str, object] = {
            "fps_in": self._fps_in.rate(),
            "fps_out": self._fps_out.rate(),
            "faces_per_s": self._faces.rate(),
            "malformed": counts.get("malformed", 0),
            "corrupt": counts.get("corrupt", 0),
            "results_dropped": counts.get("results_dropped", 0),
            "p50_ms": self._total.percentile(50),
            "p95_ms": self._total.percentile(95),
        }
        for stage, window in self._stages.items():
            fields[f"{stage}_p50_ms"] = window.percentile(50)
            fields[f"{stage}_p95_ms"] = window.percentile(95)
        fields["credit_held"] = credit_held
        fields["frames"] = counts.get("frames", 0)
        fields["results"] = counts.get("results", 0)
        fields["credit_resends"] = counts.get("credit_resends", 0)
        fields["reloads"] = counts.get("reloads", 0)
        fields["reload_failed"] = counts.get("reload_failed", 0)
        return format_stats_line(fields)
