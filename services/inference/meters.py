"""The worker's counters, rates and per-stage latencies, and its periodic stats line."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from shared.http_status import Health, LoopWatch
from shared.messages import ResultHeader
from shared.metrics import LatencyHistogram, Sample, ServiceMetrics, counters, gauges
from shared.runtime import RateMeter, Stats, format_stats_line

__all__ = ["COUNTERS", "STAGES", "WorkerMeters", "WorkerStatus"]

#: Counter names in Stats: frames received, results sent, faces reported, faces the network
#: saw (the others kept their track's probabilities: ``--classify-every``), malformed
#: messages, frames whose JPEG did not decode, results the display did not take, credit
#: re-requests after silence, models swapped in while running, new model files refused.
COUNTERS: Final = (
    "frames",
    "results",
    "faces",
    "classified",
    "malformed",
    "corrupt",
    "results_dropped",
    "credit_resends",
    "reloads",
    "reload_failed",
    "heartbeats",
)
STAGES: Final = ("decode", "detect", "classify")
COUNTER_HELP: Final = {
    "frames": "Frames received from captures.",
    "results": "Results sent to the display.",
    "faces": "Faces reported in results.",
    "classified": "Faces the network saw (a followed face between two looks keeps its track's "
    "probabilities: --classify-every).",
    "malformed": "Messages from captures that broke the wire format.",
    "corrupt": "Frames whose JPEG did not decode (answered with an error result).",
    "results_dropped": "Results the display did not take in time.",
    "credit_resends": "Credit asked for again after a silent second.",
    "reloads": "New model files swapped in while running.",
    "reload_failed": "New model files refused.",
    "heartbeats": "Heartbeats sent to captures.",
    "full_detections": "Frames the tracking detector gave its full pass (first, due, cut, lost).",
    "yunet_sweeps": "Frames YuNet swept whole for the faces BlazeFace's full pass missed.",
    "yunet_sweep_faces": "Faces YuNet's sweep found that the full pass had not.",
}
GAUGE_HELP: Final = {
    "fps_in": "Frames received per second.",
    "fps_out": "Results sent per second.",
    "faces_per_s": "Faces reported per second.",
    "in_flight": "Frames asked for from captures and not yet received (credit held).",
}
#: /healthz answers 503 when the loop has not turned for this long (one frame at most).
STUCK_AFTER_S: Final = 30.0


class WorkerMeters:
    """Everything the stats line reports; ``stats`` is shared with the result sender."""

    def __init__(self, registry: ServiceMetrics, window_s: float = 10.0) -> None:
        self.stats = Stats()
        # Per stage, and "total" (a frame's whole time in the worker): histograms for /metrics.
        histogram = registry.histogram(
            "stage", "Time a frame spends in one stage of the worker.", ["stage"]
        )
        self._fps_in = RateMeter(window_s)
        self._fps_out = RateMeter(window_s)
        self._faces = RateMeter(window_s)
        self._total = LatencyHistogram(histogram.labels(stage="total"))
        self._stages = {stage: LatencyHistogram(histogram.labels(stage=stage)) for stage in STAGES}
        self.watch = LoopWatch(STUCK_AFTER_S, time.monotonic)

    def turned(self) -> None:
        self.watch.turned()

    def frame_in(self) -> None:
        self.stats.increment("frames")
        self._fps_in.mark()

    def result_out(self, result: ResultHeader, sent: bool) -> None:
        timings = result.timings
        self._observe("total", timings.total_ms)
        self._observe("decode", timings.decode_ms)
        if result.error is None:
            self._observe("detect", timings.detect_ms)
        if result.faces:
            # Frames without faces skip the model; their 0 ms would hide its real cost.
            self._observe("classify", timings.classify_ms)
            self.stats.increment("faces", len(result.faces))
            self._faces.mark(len(result.faces))
        if sent:
            self.stats.increment("results")
            self._fps_out.mark()

    def _observe(self, stage: str, ms: float) -> None:
        (self._total if stage == "total" else self._stages[stage]).observe_ms(ms)

    def line(self, credit_held: int) -> str:
        counts = self.stats.snapshot()
        fields: dict[str, object] = {
            "fps_in": self._fps_in.rate(),
            "fps_out": self._fps_out.rate(),
            "faces_per_s": self._faces.rate(),
            "malformed": counts.get("malformed", 0),
            "corrupt": counts.get("corrupt", 0),
            "drops": counts.get("results_dropped", 0),
            "p50_ms": self._total.quantile_ms(0.5),
            "p95_ms": self._total.quantile_ms(0.95),
        }
        for stage, window in self._stages.items():
            fields[f"{stage}_p50_ms"] = window.quantile_ms(0.5)
            fields[f"{stage}_p95_ms"] = window.quantile_ms(0.95)
        fields["in_flight"] = credit_held
        fields["frames"] = counts.get("frames", 0)
        fields["results"] = counts.get("results", 0)
        fields["credit_resends"] = counts.get("credit_resends", 0)
        fields["reloads"] = counts.get("reloads", 0)
        fields["reload_failed"] = counts.get("reload_failed", 0)
        return format_stats_line(fields)

    def metrics(self, credit_held: int) -> list[Sample]:
        counts = {name: 0 for name in COUNTERS}
        counts.update(self.stats.snapshot())
        values: dict[str, float | int | None] = {
            "fps_in": self._fps_in.rate(),
            "fps_out": self._fps_out.rate(),
            "faces_per_s": self._faces.rate(),
            "in_flight": credit_held,
        }
        return counters(counts, COUNTER_HELP) + gauges(values, GAUGE_HELP)


class WorkerStatus:
    """What the worker's ``/metrics`` and ``/healthz`` show (read from the status thread)."""

    def __init__(
        self,
        meters: WorkerMeters,
        registry: ServiceMetrics,
        worker_id: str,
        *,
        credit_held: Callable[[], int],
        model_version: Callable[[], str],
        detector_counts: Callable[[], dict[str, int]] | None = None,
        **described: str,
    ) -> None:
        self._meters = meters
        self._detector_counts = detector_counts
        self._registry = registry
        self._worker_id = worker_id
        self._credit_held = credit_held
        self._model_version = model_version
        self._described = described
        self._describe()

    def _describe(self) -> None:
        self._registry.describe(
            worker_id=self._worker_id, model_version=self._model_version(), **self._described
        )

    def metrics(self) -> list[Sample]:
        # The model changes with a hot reload: the info metric follows at each scrape.
        self._describe()
        samples = self._meters.metrics(self._credit_held())
        if self._detector_counts is not None:
            samples += counters(self._detector_counts(), COUNTER_HELP)
        return samples

    def health(self) -> Health:
        return self._meters.watch.health(
            worker_id=self._worker_id, model_version=self._model_version()
        )
