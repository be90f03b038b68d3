"""Recurring jobs: computing run times and submitting the due ones, once each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from django.db import transaction
from django.utils import timezone

from jobqueue.models import JobSchedule
from jobqueue.submission import JobRequest, submit_job

DUE_BATCH = 200


def next_run_after(schedule: JobSchedule, after: datetime) -> datetime:
    if schedule.cron:
        return croniter(schedule.cron, after).get_next(datetime)
    assert schedule.interval_seconds is not None  # a schedule has a cron or an interval (a constraint)
    return after + timedelta(seconds=schedule.interval_seconds)


def run_due_schedules(request_from_template: Callable[[dict[str, Any]], JobRequest]) -> int:
    """Submit one job for each due schedule and move it to its next run.

    Safe with several beats: a due schedule is locked with SKIP LOCKED and advanced in the same
    transaction as its job, whose idempotency key names the run. After downtime a schedule runs
    once, not once per missed tick. `request_from_template` parses a stored POST /api/jobs body
    (the API's parser: the template was validated with it when saved).
    """
    now = timezone.now()
    submitted = 0
    with transaction.atomic():
        due = JobSchedule.objects.select_for_update(skip_locked=True).filter(
            enabled=True, next_run_at__lte=now
        )
        for schedule in due.order_by("next_run_at")[:DUE_BATCH]:
            assert schedule.next_run_at is not None  # due: filtered on it
            request = request_from_template(schedule.job_template)
            request.idempotency_key = f"schedule:{schedule.id}:{schedule.next_run_at.isoformat()}"
            request.metadata = {**request.metadata, "schedule_id": str(schedule.id)}
            request.tenant_id = schedule.tenant_id
            job, _ = submit_job(request, schedule.api_key)
            schedule.last_run_at = schedule.next_run_at
            schedule.last_job = job
            schedule.next_run_at = next_run_after(schedule, max(now, schedule.next_run_at))
            schedule.save(update_fields=["last_run_at", "last_job", "next_run_at", "updated_at"])
            submitted += 1
    return submitted
