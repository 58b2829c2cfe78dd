"""What benchmarks and tests share: free loopback ports, and a scrape of a service's /metrics."""

from __future__ import annotations

import random
import re
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import bucket_quantile

__all__ = ["free_loopback_port", "free_loopback_port_prefix", "parse_metrics", "scrape"]


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_loopback_port_prefix(count: int) -> int:
    """A prefix P with loopback ports P00..P(count-1) free: the deploy gives worker N the
    status port ``<prefix><NN>``."""
    for _ in range(100):
        prefix = random.randint(300, 640)
        if all(_loopback_port_free(prefix * 100 + n) for n in range(count)):
            return prefix
    raise RuntimeError(f"no free range of {count} loopback ports found")


def _loopback_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of a Prometheus exposition, parsed by prometheus_client (so a malformed page
    fails): ``{name without emojify_<service>_: value}``; labelled samples as
    ``name{key="value",...}``."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = re.sub(r"^emojify_[a-z]+_", "", sample.name)
            if sample.labels:
                labels = ",".join(
                    f'{key}="{value}"' for key, value in sorted(sample.labels.items())
                )
                name = f"{name}{{{labels}}}"
            values[name] = float(sample.value)
    return values


def scrape(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    """``parse_metrics`` of ``<url>metrics``; raises OSError when it does not answer."""
    with urllib.request.urlopen(url + "metrics", timeout=timeout_s) as response:
        return parse_metrics(response.read().decode())


def histogram_quantile(values: dict[str, float], name: str, q: float) -> float | None:
    """The ``q`` quantile of histogram ``name`` (unlabelled) from ``parse_metrics`` samples
    (``shared.metrics.bucket_quantile``, as the services' own stats lines compute it); None
    when it holds no observation."""
    prefix = f'{name}_bucket{{le="'
    buckets = [
        (float(key[len(prefix) : -2]), count)
        for key, count in values.items()
        if key.startswith(prefix)
    ]
    return bucket_quantile(buckets, q)
