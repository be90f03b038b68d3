"""docker/grafana: the provisioned datasource and dashboard parse, and every panel's query names only
metrics the system exports (the control plane's /metrics and GPU workers' own)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from django.test import Client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_worker import metrics as gpu_metrics
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

GRAFANA = ROOT / "docker" / "grafana"
PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "by", "without", "rate", "irate", "increase", "deriv",
    "histogram_quantile", "le", "and", "or", "unless", "on", "ignoring", "offset",
}  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _series_names(text: str) -> set[str]:
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def _named_metrics(expr: str) -> set[str]:
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\b(by|without)\s*\([^)]*\)", "", bare)  # grouping labels
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges
    return {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if word not in PROMQL_WORDS}


def test_every_dashboard_query_names_a_metric_the_system_exports():
    exported = _series_names(Client().get("/metrics").content.decode())
    exported |= _series_names(generate_latest(gpu_metrics.REGISTRY).decode()) | set(gpu_metrics.GPU_GAUGES)
    dashboard = json.loads((GRAFANA / "dashboards" / "jobqueue.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]

    assert len(queries) >= 12
    unknown = {name for expr in queries for name in _named_metrics(expr)} - exported
    assert unknown == set()
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in (
        "queue depth",
        "throughput",
        "wait",
        "run time",
        "failures",
        "workers",
        "gpu",
        "webhook",
        "lane",
    ):
        assert topic in titles


def test_the_provisioning_points_grafana_at_prometheus_and_the_dashboards_folder():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    dashboard = json.loads((GRAFANA / "dashboards" / "jobqueue.json").read_text())
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "jobqueue.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
