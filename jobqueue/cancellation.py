"""Cancelling jobs. Waiting jobs are cancelled at once; running ones cooperatively.

A running job's cancellation is stored on the job and mirrored to the broker's Redis, where its
worker checks before starting and while running; the worker then stops its connector and reports
`cancelled`. Celery's `revoke(terminate=True)` is never used: it kills a process that may already be
running another job.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.functions import Now

from jobqueue import broker, lifecycle
from jobqueue.errors import JobAlreadyFinished, JobNotFound
from jobqueue.events import EventType, record_job_event
from jobqueue.models import ACTIVE_STATUSES, NOT_STARTED_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from jobqueue.transitions import transition

logger = logging.getLogger(__name__)


def cancel_job(job_id, reason: str = "") -> Job:
    """Cancel a job; returns it (status `cancelled`, or still active with `cancel_requested_at` set)."""
    reason = reason[:500]
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise JobNotFound()
        if job.status in TERMINAL_STATUSES:
            raise JobAlreadyFinished(f"job is already {job.status}", status=job.status)
        if job.status in NOT_STARTED_STATUSES:
            job = cancel_unstarted(job.pk, reason)
            lifecycle.job_finished(job)
            return job
        if job.status in ACTIVE_STATUSES and job.cancel_requested_at is None:
            Job.objects.filter(pk=job.pk).update(
                cancel_requested_at=Now(), cancel_reason=reason, updated_at=Now()
            )
            job.refresh_from_db()
            record_job_event(EventType.JOB_CANCEL_REQUESTED, job, {"reason": reason})
        attempt = job.attempt
        transaction.on_commit(lambda: _mirror_cancel_flag(str(job.pk), attempt))
        return job


def cancel_unstarted(job_id, reason: str) -> Job | None:
    """Cancel a job that no worker has: one compare-and-set, so a job that got assigned meanwhile is
    left alone (None). No lifecycle hook: callers inside the workflow engine recount themselves."""
    return transition(
        job_id,
        from_statuses=NOT_STARTED_STATUSES,
        to=JobStatus.CANCELLED,
        cancel_reason=reason,
        cancel_requested_at=Now(),
        completed_at=Now(),
        event=EventType.JOB_CANCELLED,
        event_payload={"reason": reason},
    )


def _mirror_cancel_flag(job_id: str, attempt: int) -> None:
    try:
        broker.stop_attempt(job_id, attempt)
    except Exception:
        # The request is stored in Postgres; the sweep mirrors pending requests again.
        logger.exception("could not mirror the cancellation of job %s to Redis", job_id)
