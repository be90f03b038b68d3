"""Workflow counts for the stats endpoint."""

from __future__ import annotations

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, QuerySet
from django.utils import timezone

from jobqueue.stats import TIMEFRAMES
from wire.json_types import JsonObject
from workflows.models import Workflow, WorkflowStatus


def workflow_stats(timeframe: str, workflows: QuerySet[Workflow]) -> JsonObject:
    """Counts of `workflows` (the caller's: a tenant's, or every tenant's for an operator)."""
    since = timezone.now() - TIMEFRAMES[timeframe]
    recent = workflows.filter(created_at__gte=since)
    by_status = dict.fromkeys(WorkflowStatus.values, 0)
    for row in recent.values("status").annotate(count=Count("key")).order_by():
        by_status[row["status"]] = row["count"]
    took = ExpressionWrapper(F("completed_at") - F("created_at"), output_field=DurationField())
    average = recent.filter(status=WorkflowStatus.COMPLETED).aggregate(average=Avg(took))["average"]
    return {
        "timeframe": timeframe,
        "since": since.isoformat(),
        "total": sum(by_status.values()),
        "by_status": by_status,
        "average_completion_seconds": round(average.total_seconds(), 3) if average else None,
    }
