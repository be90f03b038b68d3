"""Applying GPU workers' lifecycle reports (started, progress, succeeded, failed, cancelled).

Each report names a job and an attempt. A report for any other attempt, or for a job no longer in a
state the report can move, changes nothing (returns False): duplicate and late messages are harmless.
A report that frees a worker slot offers that slot the next job in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from jobqueue import lifecycle
from jobqueue.backoff import retry_delay_seconds
from jobqueue.dispatch import dispatch_on_commit, fill_worker, return_to_pending
from jobqueue.events import EventType, record_job_event
from jobqueue.models import ACTIVE_STATUSES, DeadLetterJob, DeadLetterReason, ExecutionOutcome, Job, JobStatus
from jobqueue.transitions import ExecutionChange, StartedBefore, transition
from machines.models import Worker, WorkerStatus

logger = logging.getLogger(__name__)

IMMEDIATE_RETRY_SECONDS = 0.05  # shorter backoffs go straight back to pending


def job_started(job_id: str, attempt: int, worker_id: str, running_for_ms: int = 0) -> bool:
    """The worker has been running the job for `running_for_ms` (it reports the start a little late,
    so that short jobs report start and outcome in one message)."""
    with transaction.atomic():
        job = transition(
            job_id,
            from_statuses={JobStatus.ASSIGNED},
            to=JobStatus.RUNNING,
            on_attempt=attempt,
            started_at=StartedBefore(running_for_ms),
            event=EventType.JOB_STARTED,
            event_payload={"worker_id": worker_id},
            execution=ExecutionChange.started(),
        )
        if job is None:
            return False
        lifecycle.job_started(job)
        return True


def job_progress(job_id: str, attempt: int, progress: int, stage: str = "") -> bool:
    """The job row always has the latest progress; the event log gets at most one progress event per
    PROGRESS_EVENT_MIN_INTERVAL_SECONDS per job (and always the 100%), so it stays readable."""
    progress = max(0, min(100, int(progress)))
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, attempt=attempt, status__in=ACTIVE_STATUSES)
            .only(
                "id",
                "status",
                "attempt",
                "progress_event_at",
                "workflow_id",
                "worker_id",
                "machine_id",
                "correlation_id",
            )
            .first()
        )
        if job is None:
            return False
        now = timezone.now()
        interval = timedelta(seconds=settings.PROGRESS_EVENT_MIN_INTERVAL_SECONDS)
        log_it = progress == 100 or job.progress_event_at is None or now - job.progress_event_at >= interval
        changes = {"progress": progress, "stage": stage[:200], "updated_at": Now()}
        if log_it:
            changes["progress_event_at"] = now
        Job.objects.filter(pk=job.pk).update(**changes)
        if log_it:
            record_job_event(EventType.JOB_PROGRESS, job, {"progress": progress, "stage": stage[:200]})
        return True


def job_succeeded(job_id: str, attempt: int, result: Any, runtime_ms: int | None = None) -> bool:
    with transaction.atomic():
        job = transition(
            job_id,
            from_statuses=ACTIVE_STATUSES,
            to=JobStatus.COMPLETED,
            on_attempt=attempt,
            **_started(runtime_ms),
            result=result,
            error=None,
            progress=100,
            completed_at=Now(),
            event=EventType.JOB_COMPLETED,
            event_payload={"result": result},
            execution=ExecutionChange(ExecutionOutcome.COMPLETED),
        )
        if job is None:
            return False
        lifecycle.job_finished(job)
        _release_slot(job.worker_id)
        return True


def job_failed(
    job_id: str,
    attempt: int,
    error: dict[str, Any],
    outcome: ExecutionOutcome = ExecutionOutcome.FAILED,
    runtime_ms: int | None = None,
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
        execution = ExecutionChange(outcome, error)
        started = _started(runtime_ms)
        if job.cancel_requested_at is not None:
            _cancel(job, execution, started)  # asked to stop: a failure on the way out is not worth a retry
        elif outcome == ExecutionOutcome.LOST and _lost_attempts(job) + 1 >= settings.POISON_LOST_ATTEMPTS:
            _fail_for_good(job, error, execution, started, DeadLetterReason.POISON)
        elif error["class"] == "transient" and job.retry_count < job.max_retries:
            _retry(job, error, execution, started)
        else:
            _fail_for_good(job, error, execution, started)
        _release_slot(worker_id)
        return True


def worker_lost(job_id, attempt: int, message: str) -> bool:
    """The control plane declares an attempt dead with its worker (a transient failure)."""
    error = {"code": "WORKER_LOST", "message": message, "class": "transient"}
    return job_failed(job_id, attempt, error, outcome=ExecutionOutcome.LOST)


def job_cancelled(job_id: str, attempt: int, runtime_ms: int | None = None) -> bool:
    """The worker stopped the job because its cancellation was requested."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.attempt != attempt or job.status not in ACTIVE_STATUSES:
            return False
        _cancel(job, ExecutionChange(ExecutionOutcome.CANCELLED), _started(runtime_ms))
        _release_slot(job.worker_id)
        return True


def job_handed_back(job_id: str, attempt: int, runtime_ms: int | None = None) -> bool:
    """A worker shutting down stopped the job unfinished: back to pending, without using a retry
    (nothing went wrong with the job), offered to another worker at once. The attempt is recorded."""
    error = {
        "code": "HANDED_BACK",
        "message": "its worker shut down before finishing it",
        "class": "transient",
    }
    with transaction.atomic():
        job = return_to_pending(
            job_id,
            attempt,
            ACTIVE_STATUSES,
            "handed_back",
            error,
            progress=0,
            stage="",
            **_started(runtime_ms),
        )
        if job is None:
            return False
        dispatch_on_commit([job.pk])
        return True


def _started(runtime_ms: int | None) -> dict[str, StartedBefore]:
    """A final report dates the attempt's start from the runtime the worker measured."""
    return {"started_at": StartedBefore(runtime_ms)} if runtime_ms is not None else {}


def _cancel(job: Job, execution: ExecutionChange, started: dict | None = None) -> None:
    cancelled = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.CANCELLED,
        on_attempt=job.attempt,
        **(started or {}),
        completed_at=Now(),
        event=EventType.JOB_CANCELLED,
        event_payload={"reason": job.cancel_reason},
        execution=execution,
    )
    if cancelled is not None:
        lifecycle.job_finished(cancelled)


def _lost_attempts(job: Job) -> int:
    """Attempts of the current budget that died with their worker (not those that never reached one)."""
    return job.executions.filter(
        attempt__gt=job.budget_start_attempt, outcome=ExecutionOutcome.LOST, error__code="WORKER_LOST"
    ).count()


def _retry(job: Job, error: dict[str, Any], execution: ExecutionChange, started: dict) -> None:
    """Back to the queue after a backoff, with the same priority and place in line; the next
    assignment is a new attempt. The wait is visible as `scheduled` with its `scheduled_at`."""
    retry_number = job.retry_count + 1  # the row is locked by job_failed
    delay = retry_delay_seconds(retry_number)
    run_at = timezone.now() + timedelta(seconds=delay)
    immediate = delay < IMMEDIATE_RETRY_SECONDS
    transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.PENDING if immediate else JobStatus.SCHEDULED,
        on_attempt=job.attempt,
        **started,
        retry_count=retry_number,
        error=error,
        worker_id=None,
        machine_id=None,
        scheduled_at=None if immediate else run_at,
        queued_at=Now() if immediate else None,
        event=EventType.JOB_RETRY_SCHEDULED,
        event_payload={
            "error": error,
            "retry_count": retry_number,
            "max_retries": job.max_retries,
            "next_run_at": run_at.isoformat(),
        },
        execution=execution,
    )
    if immediate:
        dispatch_on_commit([job.pk])


def _fail_for_good(
    job: Job,
    error: dict[str, Any],
    execution: ExecutionChange,
    started: dict,
    reason: DeadLetterReason | None = None,
) -> None:
    failed = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.FAILED,
        on_attempt=job.attempt,
        **started,
        error=error,
        completed_at=Now(),
        event=EventType.JOB_FAILED,
        event_payload={"error": error},
        execution=execution,
    )
    if reason is None:
        permanent = error["class"] == "permanent"
        reason = DeadLetterReason.PERMANENT_FAILURE if permanent else DeadLetterReason.RETRIES_EXHAUSTED
    DeadLetterJob.objects.create(job=failed, reason=reason, last_error=error, attempts=failed.attempt)
    record_job_event(EventType.JOB_DEAD_LETTERED, failed, {"reason": reason, "error": error})
    lifecycle.job_finished(failed)


def _release_slot(worker_id: str | None) -> None:
    """Offer the freed slot the next job, in this transaction; mark the worker idle if nothing came."""
    if not worker_id:
        return
    if not fill_worker(worker_id):
        Worker.objects.filter(pk=worker_id, status=WorkerStatus.BUSY).exclude(
            pk__in=Job.objects.filter(worker_id=worker_id, status__in=ACTIVE_STATUSES).values("worker_id")
        ).update(status=WorkerStatus.IDLE)


def _normalise_error(error: dict[str, Any] | None) -> dict[str, Any]:
    error = dict(error or {})
    error_class = error.get("class") if error.get("class") in {"transient", "permanent"} else "transient"
    return {
        "code": str(error.get("code") or "WORKER_ERROR")[:100],
        "message": str(error.get("message") or "")[:4000],
        "class": error_class,
        **({"details": error["details"]} if isinstance(error.get("details"), dict) else {}),
    }
