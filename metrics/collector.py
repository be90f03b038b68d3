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
from core.batch_consumer import lane_backlog, queue_lists
from core.redis import redis_client
from counters.definitions import DECLARED
from counters.definitions import Metric as CounterDefinition
from counters.tally import totals
from dispatch import refusals
from events.cursors import backlogs
from machines import credentials
from metrics import readings
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from wire.json_types import JsonObject

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
        yield from broker_memory()
        yield refused_messages()
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
    decoded: JsonObject = json.loads(key)
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
    """Messages waiting on each lane: the batched lanes summed over every worker's own list."""
    family = GaugeMetricFamily(
        "control_plane_lane_backlog", "Messages waiting on each control-plane queue.", labels=["lane"]
    )
    client = redis_client()
    senders = credentials.active_worker_ids()
    for lane in settings.BATCHED_LANES:
        family.add_metric([lane], lane_backlog(client, lane, senders))
    queues = [lane for lane in settings.CONTROL_PLANE_LANES if lane not in settings.BATCHED_LANES]
    for queue in [*queues, settings.WEBHOOK_QUEUE]:
        pipeline = client.pipeline()
        for name in queue_lists(queue):
            pipeline.llen(name)
        family.add_metric([queue], sum(pipeline.execute()))
    return family


def broker_memory() -> Iterator[GaugeMetricFamily]:
    """The broker's memory against its bound (`maxmemory`, with `noeviction`: past it every write
    fails, the control plane's included), for the alert that fires before it is reached."""
    memory: Any = redis_client().info("memory")
    used = GaugeMetricFamily("broker_memory_used_bytes", "Memory the broker (Redis) uses.")
    used.add_metric([], memory["used_memory"])
    yield used
    bound = GaugeMetricFamily("broker_maxmemory_bytes", "The broker's memory bound (0: none).")
    bound.add_metric([], memory["maxmemory"])
    yield bound


def refused_messages() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "worker_messages_refused",
        "GPU workers' messages not applied, by reason (dispatch/refusals.py), since the broker started.",
        labels=["reason"],
    )
    for reason, count in sorted(refusals.counts().items()):
        family.add_metric([reason], count)
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
