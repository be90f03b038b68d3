"""What `/metrics` answers, read from the source of truth at scrape time.

Counters and histograms come from the `counters` table, which every process adds to in its own
transactions (`counters.tally`); gauges are counted in Postgres and Redis when scraped. Any API
process therefore answers for the whole control plane, and a process's restart loses nothing: no
per-process registry to merge (prometheus-client's multiprocess mode would need a shared folder on one
host, which a fleet of containers does not have)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# The modules that declare counters (each owner declares its own): imported so that every declared
# series shows in this process, whatever else it imported.
import dispatch.lane_batches  # noqa: F401
import events.relay  # noqa: F401
import metrics.folding  # noqa: F401
import webhooks.outcome  # noqa: F401
from core.batch_consumer import queue_lists
from core.redis import redis_client
from counters.definitions import DECLARED
from counters.definitions import Metric as CounterDefinition
from counters.tally import totals
from events.cursors import backlogs
from metrics import readings
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

CONSUMER_BACKLOG_CAP = 100_000  # counting further would make a scrape slow exactly when it matters


class ControlPlaneCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from counted()
        depths = readings.queue_depths()
        yield queue_depth(depths)
        yield dead_letter_jobs(depths)
        yield from workers()
        yield from webhook_gauges()
        yield lane_backlogs()
        yield consumer_backlogs()


def counted() -> Iterator[Metric]:
    """Every declared counter and histogram, with the series recorded so far."""
    stored = totals()
    for metric in sorted(DECLARED.values(), key=lambda m: m.name):
        if metric.is_histogram:
            yield _histogram(metric, stored)
        else:
            family = CounterMetricFamily(
                metric.name.removesuffix("_total"), metric.help, labels=metric.labels
            )
            for key, value in stored.get(metric.name, {}).items():
                family.add_metric(_values(key, metric.labels), value)
            yield family


def _histogram(metric: CounterDefinition, stored: dict[str, dict[str, float]]) -> HistogramMetricFamily:
    """The stored per-bucket counts made cumulative over every bound, as Prometheus reads them."""
    family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    per_bucket: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for key, count in stored.get(f"{metric.name}_bucket", {}).items():
        per_bucket[tuple(_values(key, metric.labels))][json.loads(key)["le"]] = count
    sums = {tuple(_values(key, metric.labels)): v for key, v in stored.get(f"{metric.name}_sum", {}).items()}
    for values, counts in per_bucket.items():
        cumulative = list(itertools.accumulate(counts.get(le, 0.0) for le in metric.bucket_labels))
        family.add_metric(
            list(values), list(zip(metric.bucket_labels, cumulative, strict=True)), sums.get(values, 0.0)
        )
    return family


def _values(key: str, labels: tuple[str, ...]) -> list[str]:
    decoded: dict[str, Any] = json.loads(key)
    return [decoded[label] for label in labels]


def queue_depth(depths: dict[tuple[str, str], int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "queue_depth_gauge", "Jobs by status and pool; dlq: open dead letters.", labels=["status", "pool"]
    )
    for (status, pool), count in sorted(depths.items()):
        family.add_metric([status, pool], count)
    return family


def workers() -> Iterator[Metric]:
    alive = GaugeMetricFamily("worker_alive_gauge", "Workers heard from recently, by pool.", labels=["pool"])
    by_status = GaugeMetricFamily(
        "workers_by_status",
        "Workers by pool and status (silent ones count as offline).",
        labels=["pool", "status"],
    )
    counts = readings.workers()
    for (pool, status), count in sorted(counts.items()):
        by_status.add_metric([pool, status], count)
    for pool, count in sorted(readings.alive_by_pool(counts).items()):
        alive.add_metric([pool], count)
    yield alive
    yield by_status


def dead_letter_jobs(depths: dict[tuple[str, str], int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("dead_letter_jobs", "Open dead letters (failed for good, not requeued).")
    family.add_metric([], readings.open_dead_letters(depths))
    return family


def webhook_gauges() -> Iterator[Metric]:
    waiting = GaugeMetricFamily("webhook_deliveries_pending", "Webhook deliveries not yet delivered.")
    waiting.add_metric([], WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count())
    yield waiting
    disabled = GaugeMetricFamily(
        "webhook_endpoints_disabled", "Webhook endpoints disabled after failing (not by their owner)."
    )
    disabled.add_metric([], WebhookEndpoint.objects.filter(enabled=False).exclude(disabled_reason="").count())
    yield disabled


def lane_backlogs() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "control_plane_lane_backlog", "Messages waiting on each control-plane queue.", labels=["lane"]
    )
    lanes = [*settings.CONTROL_PLANE_LANES, settings.WEBHOOK_QUEUE]
    pipeline = redis_client().pipeline()
    for lane in lanes:
        for name in queue_lists(lane):
            pipeline.llen(name)
    lengths = pipeline.execute()
    per_lane = len(lengths) // len(lanes)
    for index, lane in enumerate(lanes):
        family.add_metric([lane], sum(lengths[index * per_lane : (index + 1) * per_lane]))
    return family


def consumer_backlogs() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "event_consumer_backlog",
        f"Committed events each consumer of the log has not passed yet (counted up to {CONSUMER_BACKLOG_CAP}).",
        labels=["consumer"],
    )
    for name, behind in sorted(backlogs(CONSUMER_BACKLOG_CAP).items()):
        family.add_metric([name], behind)
    return family
