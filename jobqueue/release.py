"""Held jobs become pending when their time comes: a `scheduled_at` in the future, or a retry's backoff."""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from events.types import EventType
from jobqueue import lifecycle
from jobqueue.models import Job, JobStatus
from jobqueue.transitions import transition

RELEASE_BATCH = 500


def release_scheduled_jobs() -> int:
    """Move scheduled jobs whose time has come to pending (offered to workers on commit)."""
    with transaction.atomic():
        due = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=JobStatus.SCHEDULED, scheduled_at__lte=Now())
            .order_by("scheduled_at")
            .values_list("pk", flat=True)[:RELEASE_BATCH]
        )
        released = []
        for job_id in due:
            job = transition(
                job_id,
                from_statuses={JobStatus.SCHEDULED},
                to=JobStatus.PENDING,
                queued_at=Now(),
                event=EventType.JOB_QUEUED,
                event_payload={"reason": "scheduled_time_reached"},
            )
            if job is not None:
                released.append(job.pk)
        lifecycle.jobs_pending(released)
    return len(released)
