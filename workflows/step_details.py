"""The one description of a workflow's steps, used by the API, events and webhooks alike."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from wire.json_types import JsonObject
from workflows.models import WorkflowStep


def step_details(steps: Iterable[WorkflowStep]) -> list[JsonObject]:
    """Steps (with their jobs loaded) in index order, each in the same shape everywhere."""
    return [_detail(step) for step in sorted(steps, key=lambda s: s.index)]


def _detail(step: WorkflowStep) -> JsonObject:
    job = step.job
    duration_ms = None
    if job.started_at and job.completed_at:
        duration_ms = max(0, int((job.completed_at - job.started_at).total_seconds() * 1000))
    return {
        "step_index": step.index,
        "name": step.name,
        "job_id": str(job.id),
        "status": job.status,
        "result": job.result,
        "error": job.error,
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "duration_ms": duration_ms,
        "attempts": job.attempt,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
