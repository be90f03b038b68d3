"""How an attempt ends: completed, failed (retried after a backoff, or dead-lettered), cancelled, or
given back without using a retry. Also its start and progress.

Each names a job and an attempt and is a compare-and-set: for any other attempt, or a job no longer
in a state it can move, it changes nothing and returns None (or False), so duplicate and late
reports are harmless. Nothing here knows about workers; the dispatcher frees their slots.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from core.db import FieldValues
from events.recording import record_job_event
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.backoff import retry_delay_seconds
from jobqueue.models import (
    ACTIVE_STATUSES,
    DeadLetterJob,
    DeadLetterReason,
    ExecutionOutcome,
    Job,
    JobKey,
    JobStatus,
)
from jobqueue.transitions import ExecutionChange, StartedBefore, transition
from wire.json_types import JsonObject, JsonValue
from wire.reports import attempt_error, normalise_error

IMMEDIATE_RETRY_SECONDS = 0.05  # shorter backoffs go straight back to pending
WORKER_LOST = "WORKER_LOST"  # the error code of an attempt that died with its worker


def start(job_id: JobKey, attempt: int, worker_id: str, running_for_ms: int = 0) -> bool:
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


def record_progress(job_id: JobKey, attempt: int, progress: int, stage: str = "") -> bool:
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
        changes: FieldValues = {"progress": progress, "stage": stage[:200], "updated_at": Now()}
        if log_it:
            changes["progress_event_at"] = now
        Job.objects.filter(pk=job.pk).update(**changes)
        if log_it:
            record_job_event(EventType.JOB_PROGRESS, job, {"progress": progress, "stage": stage[:200]})
        return True


def complete(job_id: JobKey, attempt: int, result: JsonValue, runtime_ms: int | None = None) -> Job | None:
    """The attempt succeeded; returns the completed job (None if the report was stale)."""
    job = transition(
        job_id,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.COMPLETED,
        on_attempt=attempt,
        **started_before(runtime_ms),
        result=result,
        error=None,
        progress=100,
        completed_at=Now(),
        event=EventType.JOB_COMPLETED,
        event_payload={"result": result},
        execution=ExecutionChange(ExecutionOutcome.COMPLETED),
    )
    if job is not None:
        lifecycle.job_finished(job)
    return job


def fail(
    job_id: JobKey,
    attempt: int,
    error: JsonObject | None,
    outcome: ExecutionOutcome = ExecutionOutcome.FAILED,
    runtime_ms: int | None = None,
) -> Job | None:
    """A failed attempt: retried when the error is transient and retries remain, else dead-lettered
    (poison when too many of its attempts died with their worker). Returns the job as it was while
    the attempt ran, or None if the report was stale. Call inside a transaction.

    `outcome` is LOST when the control plane, not the worker, declares the attempt dead."""
    error = normalise_error(error)
    job = _active_attempt(job_id, attempt)
    if job is None:
        return None
    execution = ExecutionChange(outcome, error)
    started = started_before(runtime_ms)
    if job.cancel_requested_at is not None:
        _cancel(job, execution, started)  # asked to stop: a failure on the way out is not worth a retry
    elif outcome == ExecutionOutcome.LOST and _lost_attempts(job) + 1 >= settings.POISON_LOST_ATTEMPTS:
        _fail_for_good(job, error, execution, started, DeadLetterReason.POISON)
    elif error["class"] == "transient" and job.retry_count < job.max_retries:
        _retry(job, error, execution, started)
    else:
        _fail_for_good(job, error, execution, started)
    return job


def lost_with_worker(job_id: JobKey, attempt: int, message: str) -> Job | None:
    """The control plane declares an attempt dead with its worker (a transient failure)."""
    return fail(job_id, attempt, attempt_error(WORKER_LOST, message), outcome=ExecutionOutcome.LOST)


def cancel(job_id: JobKey, attempt: int, runtime_ms: int | None = None) -> Job | None:
    """The worker stopped the attempt because its cancellation was requested. Call in a transaction."""
    job = _active_attempt(job_id, attempt)
    if job is not None:
        _cancel(job, ExecutionChange(ExecutionOutcome.CANCELLED), started_before(runtime_ms))
    return job


def return_to_pending(
    job_id: JobKey,
    attempt: int,
    from_statuses: set[JobStatus] | frozenset[JobStatus],
    reason: str,
    error: JsonObject,
    **changes: Any,
) -> Job | None:
    """The attempt ended through no fault of the job's: back to pending in its place without using a
    retry, the attempt recorded as lost with `error`, a `job_queued` event saying why. None if it
    had moved on. Whoever calls it decides when the job is offered again."""
    return transition(
        job_id,
        from_statuses=from_statuses,
        to=JobStatus.PENDING,
        on_attempt=attempt,
        worker_id=None,
        machine_id=None,
        queued_at=Now(),
        event=EventType.JOB_QUEUED,
        event_payload={"reason": reason, "error": error},
        execution=ExecutionChange(ExecutionOutcome.LOST, error),
        **changes,
    )


def _active_attempt(job_id: JobKey, attempt: int) -> Job | None:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.attempt != attempt or job.status not in ACTIVE_STATUSES:
        return None
    return job


def started_before(runtime_ms: int | None) -> dict[str, StartedBefore]:
    """A final report dates the attempt's start from the runtime the worker measured."""
    return {"started_at": StartedBefore(runtime_ms)} if runtime_ms is not None else {}


def _cancel(job: Job, execution: ExecutionChange, started: dict[str, StartedBefore]) -> None:
    cancelled = transition(
        job.pk,
        from_statuses=ACTIVE_STATUSES,
        to=JobStatus.CANCELLED,
        on_attempt=job.attempt,
        **started,
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
        attempt__gt=job.budget_start_attempt, outcome=ExecutionOutcome.LOST, error__code=WORKER_LOST
    ).count()


def _retry(
    job: Job, error: JsonObject, execution: ExecutionChange, started: dict[str, StartedBefore]
) -> None:
    """Back to the queue after a backoff, with the same priority and place in line; the next
    assignment is a new attempt. The wait is visible as `scheduled` with its `scheduled_at`."""
    retry_number = job.retry_count + 1  # the row is locked by fail()
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
        lifecycle.jobs_pending([job.pk])


def _fail_for_good(
    job: Job,
    error: JsonObject,
    execution: ExecutionChange,
    started: dict[str, StartedBefore],
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
    assert failed is not None  # the row is locked by fail() and was active
    if reason is None:
        permanent = error["class"] == "permanent"
        reason = DeadLetterReason.PERMANENT_FAILURE if permanent else DeadLetterReason.RETRIES_EXHAUSTED
    DeadLetterJob.objects.create(job=failed, reason=reason, last_error=error, attempts=failed.attempt)
    record_job_event(EventType.JOB_DEAD_LETTERED, failed, {"reason": reason, "error": error})
    lifecycle.job_finished(failed)
