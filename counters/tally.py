"""Adding to counters and histograms: increments gather in memory and `flush` writes them in one
statement (a batch, a pass, a delivery attempt), inside the caller's transaction when there is one,
so a count moves exactly when the change it counts commits."""

from __future__ import annotations

import json
import os
from collections import defaultdict

from django.conf import settings
from django.db import connection

from core.db import SqlParameters
from counters.definitions import Metric
from counters.models import Tally as TallyRow

_TABLE = TallyRow._meta.db_table
# Duplicate keys in one upsert are an error, so increments are summed per series first.
_UPSERT = f"""
    INSERT INTO {_TABLE} (name, labels, shard, value) VALUES {{rows}}
    ON CONFLICT (name, labels, shard) DO UPDATE SET value = {_TABLE}.value + EXCLUDED.value
"""


def labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


class Tally:
    """Increments not yet written."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], float] = defaultdict(float)

    def add(self, metric: Metric, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        self._pending[(metric.name, labels_key(_checked(metric, labels or {})))] += amount

    def observe(self, metric: Metric, labels: dict[str, str] | None, value: float) -> None:
        """One observation of a histogram: the one bucket it falls in, and the sum. Buckets are stored
        apart (two rows per observation, not one per bound); `/metrics` makes them cumulative and
        derives the count, as Prometheus reads them."""
        labels = _checked(metric, labels or {})
        value = max(0.0, value)
        self._pending[(f"{metric.name}_bucket", labels_key({**labels, "le": metric.bucket_of(value)}))] += 1
        self._pending[(f"{metric.name}_sum", labels_key(labels))] += value

    def flush(self) -> None:
        if not self._pending:
            return
        shard = os.getpid() % settings.COUNTER_SHARDS
        items = sorted(self._pending.items())  # one order for every writer: no deadlock between them
        params: SqlParameters = []
        for (name, labels), amount in items:
            params += [name, labels, shard, amount]
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(rows=", ".join(["(%s, %s, %s, %s)"] * len(items))), params)
        self._pending.clear()


def _checked(metric: Metric, labels: dict[str, str]) -> dict[str, str]:
    if set(labels) != set(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {sorted(labels)}")
    return {name: str(value) for name, value in labels.items()}


def totals() -> dict[str, dict[str, float]]:
    """Every series' value, shards summed: {row name: {labels key: value}}."""
    result: dict[str, dict[str, float]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name, labels, sum(value) FROM {_TABLE} GROUP BY name, labels")
        for name, labels, value in cursor.fetchall():
            result[name][labels] = value
    return result
