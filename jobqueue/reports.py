"""Applying GPU workers' lifecycle reports (started, progress, succeeded, failed, cancelled).

Each report names a job and an attempt. A report for any other attempt, or for a job no longer in a
state the report can move, changes nothing (returns False): duplicate and late messages are harmless.
A report that frees a worker slot offers that slot the next job in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.db.models.functions import Now
from psycopg.types.json import Jsonb

from jobqueue.dispatch import dispatch_on_commit, fill_worker
from jobqueue.events import EventType, record_job_event
from jobqueue.models import (
    ACTIVE_STATUSES,
    DeadLetterJob,
    DeadLetterReason,
    ExecutionOutcome,
    Job,
    JobExecution,
    JobStatus,
)
from jobqueue.transitions import transition
from machines.models import Worker, WorkerStatus

logger = logging.getLogger(__name__)


def job_started(job_id: str, attempt: int, worker_id: str) -> bool:
    with transaction.atomic():
        job = transition(
            job_id,
            from_statuses={JobStatus.ASSIGNED},
            to=JobStatus.RUNNING,
            on_attempt=attempt,
            started_at=Now(),
        )
        if job is None:
            return False
        _execution(job).filter(outcome=ExecutionOutcome.ASSIGNED).update(
            outcome=ExecutionOutcome.RUNNING, started_at=job.started_at
        )
        record_job_event(EventType.JOB_STARTED, job, {"worker_id": worker_id})
        return True


def job_progress(job_id: str, attempt: int, progress: int, stage: str = "") -> bool:
    progress = max(0, min(100, int(progress)))
    with transaction.atomic():
        updated = Job.objects.filter(pk=job_id, attempt=attempt, status__in=ACTIVE_STATUSES).update(
            progress=progress, stage=stage[:200], updated_at=Now()
        )
        if not updated:
            return False
        job = Job.objects.get(pk=job_id)
        record_job_event(EventType.JOB_PROGRESS, job, {"progress": progress, "stage": job.stage})
        return True


def job_succeeded(job_id: str, attempt: int, result: Any) -> bool:
    with transaction.atomic():
        job = transition(
            job_id,
            from_statuses=ACTIVE_STATUSES,
            to=JobStatus.COMPLETED,
            on_attempt=attempt,
            result=result,
            error=None,
            progress=100,
            completed_at=Now(),
        )
        if job is None:
            return False
        _finish_execution(job, ExecutionOutcome.COMPLETED)
        record_job_event(EventType.JOB_COMPLETED, job, {"result": result})
        _release_slot(job.worker_id)
        return True


def job_failed(
    job_id: str, attempt: int, error: dict[str, Any], outcome: ExecutionOutcome = ExecutionOutcome.FAILED
) -> bool:
    """A failed attempt: retried when the error is transient and retries remain, else dead-lettered.

    `outcome` is LOST when the control plane, not the worker, declares the attempt dead.
    """
    error = _normalise_error(error)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.attempt != attempt or job.status not in ACTIVE_STATUSES:
            return False
        worker_id = job.worker_id
        _finish_execution(job, outcome, error)
        if job.cancel_requested_at is not None:
            _cancel(job)  # it was asked to stop: a failure on the way out is not worth a retry
        elif error["class"] == "transient" and job.retry_count < job.max_retries:
            _retry(job, error)
        else:
            _fail_for_good(job, error)
        _release_slot(worker_id)
        return True


def job_cancelled(job_id: str, attempt: int) -> bool:
    """The worker stopped the job because its cancellation was requested."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.attempt != attempt or job.status not in ACTIVE_STATUSES:
            return False
        worker_id = job.worker_id
        _finish_execution(job, ExecutionOutcome.CANCELLED)
        _cancel(job)
        _release_slot(worker_id)
        return True


def _cancel(job: Job) -> None:
    cancelled = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.CANCELLED,
        on_attempt=job.attempt,
        completed_at=Now(),
    )
    record_job_event(EventType.JOB_CANCELLED, cancelled, {"reason": cancelled.cancel_reason})


def _retry(job: Job, error: dict[str, Any]) -> None:
    # Back to pending with the same priority and place in line; the next assignment is a new attempt.
    retried = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.PENDING,
        on_attempt=job.attempt,
        retry_count=job.retry_count + 1,  # the row is locked by job_failed
        error=error,
        worker_id=None,
        machine_id=None,
        queued_at=Now(),
    )
    record_job_event(
        EventType.JOB_RETRY_SCHEDULED,
        retried,
        {"error": error, "retry_count": retried.retry_count, "max_retries": retried.max_retries},
    )
    dispatch_on_commit([retried.pk])


def _fail_for_good(job: Job, error: dict[str, Any]) -> None:
    failed = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.FAILED,
        on_attempt=job.attempt,
        error=error,
        completed_at=Now(),
    )
    reason = (
        DeadLetterReason.PERMANENT_FAILURE
        if error["class"] == "permanent"
        else DeadLetterReason.RETRIES_EXHAUSTED
    )
    DeadLetterJob.objects.update_or_create(
        job=failed, defaults={"reason": reason, "last_error": error, "attempts": failed.attempt}
    )
    record_job_event(EventType.JOB_FAILED, failed, {"error": error})
    record_job_event(EventType.JOB_DEAD_LETTERED, failed, {"reason": reason, "error": error})


def _release_slot(worker_id: str | None) -> None:
    """Offer the freed slot the next job, in this transaction; mark the worker idle if nothing came."""
    if not worker_id:
        return
    if not fill_worker(worker_id):
        Worker.objects.filter(pk=worker_id, status=WorkerStatus.BUSY).exclude(
            pk__in=Job.objects.filter(worker_id=worker_id, status__in=ACTIVE_STATUSES).values("worker_id")
        ).update(status=WorkerStatus.IDLE)


def _execution(job: Job):
    return JobExecution.objects.filter(job_id=job.pk, attempt=job.attempt)


_FINISH_EXECUTION = """
    UPDATE jobqueue_jobexecution
    SET outcome = %s, error = %s, finished_at = statement_timestamp(),
        duration_ms = (extract(epoch FROM statement_timestamp() - coalesce(started_at, assigned_at)) * 1000)::bigint
    WHERE job_id = %s AND attempt = %s
"""


def _finish_execution(job: Job, outcome: ExecutionOutcome, error: dict[str, Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _FINISH_EXECUTION, [outcome, Jsonb(error) if error is not None else None, job.pk, job.attempt]
        )


def _normalise_error(error: dict[str, Any] | None) -> dict[str, Any]:
    error = dict(error or {})
    error_class = error.get("class") if error.get("class") in {"transient", "permanent"} else "transient"
    return {
        "code": str(error.get("code") or "WORKER_ERROR")[:100],
        "message": str(error.get("message") or "")[:4000],
        "class": error_class,
        **({"details": error["details"]} if isinstance(error.get("details"), dict) else {}),
    }
