"""Monotonic counts shared by every process of the control plane, kept in Postgres."""

from __future__ import annotations

from django.db import models


class Tally(models.Model):
    """One series of a counter (or one bucket, sum or count of a histogram), split in shards so that
    processes adding to the same series at once do not queue on one row; `/metrics` sums the shards.

    Counts live here rather than in each process's memory: they survive restarts, and one scrape of
    any API process sees the whole control plane (`metrics/collector.py`)."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=500, help_text="The series' labels as sorted JSON.")
    shard = models.PositiveSmallIntegerField(default=0)
    value = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels", "shard"], name="tally_series_shard")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value}"
