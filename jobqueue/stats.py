"""Job counts for the stats endpoint."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from jobqueue.models import Job, JobStatus
from wire.json_types import JsonObject

TIMEFRAMES = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def job_stats(timeframe: str, jobs: QuerySet[Job]) -> JsonObject:
    """Counts of `jobs` (the caller's: a tenant's, or every tenant's for an operator)."""
    since = timezone.now() - TIMEFRAMES[timeframe]
    rows = jobs.filter(created_at__gte=since).values("type", "status").annotate(count=Count("id")).order_by()
    by_status = dict.fromkeys(JobStatus.values, 0)
    by_type: dict[str, JsonObject] = {}
    for row in rows:
        by_status[row["status"]] += row["count"]
        entry = by_type.setdefault(row["type"], {"total": 0, "by_status": {}})
        entry["total"] += row["count"]
        entry["by_status"][row["status"]] = row["count"]
    return {
        "timeframe": timeframe,
        "since": since.isoformat(),
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_type": by_type,
    }
