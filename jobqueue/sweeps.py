"""Periodic safety nets run by Celery beat. Each is safe to run twice at once (row locks)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.functions import Now

from jobqueue import broker
from jobqueue.dispatch import dispatch_all, dispatch_on_commit
from jobqueue.events import EventType
from jobqueue.models import ACTIVE_STATUSES, Job, JobStatus
from jobqueue.transitions import transition

logger = logging.getLogger(__name__)

RELEASE_BATCH = 500


def release_scheduled_jobs() -> int:
    """Move scheduled jobs whose time has come to pending and dispatch them."""
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
            )
            if job is not None:
                released.append(job.pk)
        dispatch_on_commit(released)
    return len(released)


def dispatch_sweep() -> int:
    """Offer free workers their best jobs (covers races between concurrent dispatchers) and
    re-mirror stored cancellation requests of active jobs, in case Redis lost them."""
    assigned = len(dispatch_all())
    requested = Job.objects.filter(status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=False)
    for job_id, attempt in requested.values_list("pk", "attempt"):
        try:
            broker.publish_cancel_flag(str(job_id), attempt)
        except Exception:
            logger.exception("could not mirror the cancellation of job %s", job_id)
            break
    return assigned
