"""Cancelling jobs. Waiting jobs are cancelled at once; running ones cooperatively.

A running job's cancellation is stored on the job; after commit the dispatcher mirrors it to the
broker's Redis as the attempt's stop flag (`dispatch/cancel_flags.py`), which its worker checks
before starting and while running; the worker then stops its connector and reports
`cancelled`. Celery's `revoke(terminate=True)` is never used: it kills a process that may already be
running another job.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from events.recording import record_job_event
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.errors import JobAlreadyFinished, JobNotFound
from jobqueue.models import ACTIVE_STATUSES, NOT_STARTED_STATUSES, TERMINAL_STATUSES, Job, JobKey, JobStatus
from jobqueue.transitions import transition


def cancel_job(job_id: JobKey, reason: str = "") -> Job:
    """Cancel a job; returns it (status `cancelled`, or still active with `cancel_requested_at` set)."""
    reason = reason[:500]
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise JobNotFound()
        if job.status in TERMINAL_STATUSES:
            raise JobAlreadyFinished(f"job is already {job.status}", status=job.status)
        if job.status in NOT_STARTED_STATUSES:
            cancelled = cancel_unstarted(job.pk, reason)
            assert cancelled is not None  # the row is locked and not started
            lifecycle.job_finished(cancelled)
            return cancelled
        if job.status in ACTIVE_STATUSES and job.cancel_requested_at is None:
            Job.objects.filter(pk=job.pk).update(
                cancel_requested_at=Now(), cancel_reason=reason, updated_at=Now()
            )
            job.refresh_from_db()
            record_job_event(EventType.JOB_CANCEL_REQUESTED, job, {"reason": reason})
        lifecycle.cancel_requested(job.pk, job.attempt)  # its worker is told after commit
        return job


def cancel_unstarted(job_id: JobKey, reason: str) -> Job | None:
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
