"""Prometheus metrics of one service, on ``prometheus_client``: one registry per service.

Names are ``emojify_<service>_<name>``. What a service counts and measures as it goes (its
``Stats`` counters, rates, queue sizes) is read from the service at each scrape by a collector;
counters come out with the ``_total`` suffix. Latencies are real histograms, observed where they
are measured, in seconds, with buckets from 1 ms to 500 ms. An info metric states what runs
(the model version, the mode).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS_S",
    "LatencyHistogram",
    "MetricSource",
    "Sample",
    "ServiceMetrics",
    "bucket_quantile",
    "counters",
    "gauges",
    "metric_name",
]

#: The text exposition format prometheus_client writes.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Latency buckets: 1 ms to 500 ms (then +Inf), in seconds as Prometheus names them.
LATENCY_BUCKETS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5)

SampleKind = Literal["counter", "gauge"]

# No "_created" series beside every counter and histogram: nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Sample:
    """One value a service reports at a scrape; counters only grow, gauges go up and down."""

    name: str
    value: float
    kind: SampleKind
    help: str


class MetricSource(Protocol):
    """What a service reports at each scrape; called from the HTTP server's threads."""

    def metrics(self) -> list[Sample]: ...


def metric_name(service: str, name: str) -> str:
    """``emojify_<service>_<name>`` with every character Prometheus does not allow as ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"emojify_{service}_{name}")


def counters(values: Mapping[str, int], helps: Mapping[str, str]) -> list[Sample]:
    """Counter samples, sorted by name; help text from ``helps`` (else the name)."""
    return [
        Sample(name, float(value), "counter", helps.get(name, name))
        for name, value in sorted(values.items())
    ]


def gauges(
    values: Mapping[str, float | int | bool | None], helps: Mapping[str, str]
) -> list[Sample]:
    """Gauge samples in the given order; a None value (nothing measured yet) is left out."""
    return [
        Sample(name, float(value), "gauge", helps.get(name, name))
        for name, value in values.items()
        if value is not None
    ]


class _SourceCollector(Collector):
    """Turns a service's samples into metric families at each scrape."""

    def __init__(self, service: str, source: MetricSource) -> None:
        self._service = service
        self._source = source

    def collect(self) -> Iterable[Metric]:
        seen: set[str] = set()
        for sample in self._source.metrics():
            name = metric_name(self._service, sample.name)
            if name in seen:
                continue  # one family per name; a duplicate would make the scrape invalid
            seen.add(name)
            if sample.kind == "counter":
                yield CounterMetricFamily(name, sample.help, value=sample.value)
            else:
                yield GaugeMetricFamily(name, sample.help, value=sample.value)


class _WireCollector(Collector):
    """``emojify_<service>_wire_ignored_fields_total{kind}``: fields of newer peers ignored."""

    def __init__(self, service: str) -> None:
        self._name = metric_name(service, "wire_ignored_fields")

    def collect(self) -> Iterable[Metric]:
        from shared.wire import ignored_fields

        family = CounterMetricFamily(
            self._name,
            "Fields of a newer release's messages that this service ignored, per message kind.",
            labels=["kind"],
        )
        for kind, count in sorted(ignored_fields().items()):
            family.add_metric([kind], count)
        yield family


class ServiceMetrics:
    """The registry of one service: its histograms, its info metric, and its sampled values."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        self._info = Info(
            metric_name(service, "build"), f"What this {service} runs.", registry=self.registry
        )
        self.registry.register(_WireCollector(service))

    def latency(self, name: str, help_text: str) -> LatencyHistogram:
        """An unlabelled ``histogram`` and its recent quantiles."""
        return LatencyHistogram(self.histogram(name, help_text))

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Histogram:
        """A latency histogram ``emojify_<service>_<name>_seconds`` (1-500 ms buckets)."""
        return Histogram(
            metric_name(self.service, f"{name}_seconds"),
            help_text,
            labelnames=tuple(labels),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def describe(self, **fields: object) -> None:
        """Set the info metric ``emojify_<service>_build_info`` (e.g. the model version)."""
        self._info.info({key: str(value) for key, value in fields.items()})

    def read_from(self, source: MetricSource) -> None:
        """Report ``source.metrics()`` at every scrape from now on."""
        self.registry.register(_SourceCollector(self.service, source))

    def exposition(self) -> bytes:
        """``/metrics``: the text exposition format."""
        return generate_latest(self.registry)


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram's cumulative buckets ``(upper bound, count)``,
    interpolated within a bucket as PromQL's ``histogram_quantile`` does; None when empty. A
    quantile in the ``+Inf`` bucket is the largest finite bound."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


class LatencyHistogram:
    """One latency histogram (or one labelled child), and its recent quantiles read from the
    same buckets: what a stats line or a page shows is what ``/metrics`` says, over the last
    ``window_s`` (PromQL's ``histogram_quantile(q, rate(h[window]))``)."""

    def __init__(
        self,
        histogram: Histogram,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._histogram = histogram
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        #: Cumulative bucket counts at earlier reads, oldest first (one a second at most).
        self._past: deque[tuple[float, list[tuple[float, float]]]] = deque()

    def observe_ms(self, ms: float) -> None:
        if math.isfinite(ms):
            self._histogram.observe(max(0.0, ms) / 1000.0)

    def _buckets(self) -> list[tuple[float, float]]:
        return [
            (float(sample.labels["le"]), sample.value)
            for family in self._histogram.collect()
            for sample in family.samples
            if sample.name.endswith("_bucket")
        ]

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in ms of what was observed since the oldest read of the
        last ``window_s`` (reads come every few seconds: a stats line, a page); None when
        nothing was."""
        now, current = self._clock(), self._buckets()
        with self._lock:
            # The oldest read within the window is the base (the one before it when none is).
            while len(self._past) > 1 and self._past[0][0] < now - self._window_s:
                self._past.popleft()
            base = self._past[0][1] if self._past else [(b, 0.0) for b, _ in current]
            if not self._past or now - self._past[-1][0] >= 1.0:
                self._past.append((now, current))
        recent = [(b, c - c0) for (b, c), (_, c0) in zip(current, base, strict=True)]
        value = bucket_quantile(recent, q)
        return None if value is None else 1000.0 * value
