"""Beat's job sweeps: held jobs whose time came, and recurring schedules that are due."""

from __future__ import annotations

from celery import shared_task

from jobqueue import release, schedules
from jobqueue.api.serializers import request_from_template


@shared_task(name="jobqueue.release_scheduled_jobs")
def release_scheduled_jobs() -> int:
    return release.release_scheduled_jobs()


@shared_task(name="jobqueue.run_due_schedules")
def run_due_schedules() -> int:
    return schedules.run_due_schedules(request_from_template)
