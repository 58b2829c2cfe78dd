"""The Grafana dashboard and the Prometheus config: well formed, and every series the dashboard
queries is on the live /metrics of the services as supervisord runs them."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline_harness import REPO, running_pipeline
from tests.waiting import wait_for

DASHBOARD = REPO / "deploy" / "grafana" / "emojify.json"
PROMETHEUS = REPO / "deploy" / "prometheus.yml"
SERIES = re.compile(r"\bemojify_[a-z0-9_]+")
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge"}


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _queried_series(dashboard: dict[str, Any]) -> set[str]:
    return {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in SERIES.findall(target["expr"])
    }


def test_the_dashboard_follows_grafanas_model_with_promql_targets() -> None:
    dashboard = _dashboard()
    assert isinstance(dashboard["title"], str) and dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24
        assert panel["datasource"]["type"] == "prometheus"
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert SERIES.search(target["expr"]), target
            assert target["expr"].count("(") == target["expr"].count(")"), target
    # The list: fps, drops, stage latencies, workers and credit, in flight, offline,
    # model version.
    series = _queried_series(dashboard)
    for wanted in (
        "emojify_capture_fps_in",
        "emojify_capture_replaced_total",
        "emojify_inference_stage_seconds_bucket",
        "emojify_display_end_to_end_seconds_bucket",
        "emojify_capture_credit",
        "emojify_capture_in_flight",
        "emojify_display_inference_offline",
        "emojify_inference_build_info",
    ):
        assert wanted in series


def test_prometheus_scrapes_the_ports_supervisord_gives_the_services() -> None:
    config = PROMETHEUS.read_text()
    conf = (REPO / "deploy" / "supervisord.conf").read_text()
    assert "capture :9101" in conf and "display on its page :8080" in conf, "ports moved"
    for job, target in (
        ("emojify-capture", "127.0.0.1:9101"),
        ("emojify-display", "127.0.0.1:8080"),
        ("emojify-worker", "127.0.0.1:9200"),
    ):
        assert re.search(
            rf"job_name: {job}\n\s+static_configs:\n\s+- targets: \[[^]]*{target}", config
        )


def _series_names(url: str) -> set[str]:
    with urllib.request.urlopen(url + "metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_every_series_the_dashboard_queries_is_on_a_live_metrics_page(tmp_path: Path) -> None:
    wanted = _queried_series(_dashboard())
    with running_pipeline(tmp_path) as pipeline:
        urls = [
            pipeline.capture_status_url,
            pipeline.http_url,
            *pipeline.worker_status_urls.values(),
        ]

        def served() -> set[str]:
            assert pipeline.process.poll() is None, pipeline.log()[-4000:]
            names: set[str] = set()
            for url in urls:
                try:
                    names |= _series_names(url)
                except OSError:
                    return set()  # not listening yet
            return names

        # Stage histograms have series once a frame with a face went through a worker.
        wait_for(lambda: wanted <= served(), 180, lambda: f"{sorted(wanted - served())} served")
