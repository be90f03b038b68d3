"""Applying GPU workers' lifecycle reports (started, progress, succeeded, failed, cancelled, handed back).

Each report names a job and an attempt; `jobqueue.attempts` applies it as a compare-and-set, so a
report for any other attempt changes nothing (returns False) and duplicate and late messages are
harmless. A report that frees a worker slot offers that slot the next job in the same transaction
(`refill`; a batch of reports refills each freed worker once, `dispatch/lane_batches.py`).

Two families, by who owns the transaction:

- `apply_<outcome>` applies one outcome in the caller's transaction and returns the job (None for a
  stale report); the caller refills the freed slots (a lane batch, once per worker).
- `report_<kind>` is one report on its own: its own transaction, its worker's slot refilled; True
  when it applied. `worker_lost` is the control plane's own report that an attempt died with its
  worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from core.json_input import why_unstorable
from dispatch.assignment import dispatch_on_commit, fill_on_commit, fill_worker
from jobqueue import attempts
from jobqueue.models import ACTIVE_STATUSES, ExecutionOutcome, Job, JobExecution, JobKey
from machines.models import Worker, WorkerStatus
from wire.json_types import JsonObject, JsonValue
from wire.reports import attempt_error

Attempt = tuple[str, int]  # (job id, attempt number)


def lease_holders(presented: Iterable[tuple[Attempt, Any]]) -> dict[tuple[Attempt, Any], str]:
    """Of these (attempt, lease token) pairs as reports present them, those whose token is that
    attempt's, each with the worker that was given the attempt (one query). A report without its
    attempt's token did not come from that worker (the token travelled only on its own queue)."""
    wanted = {(attempt, lease): _uuid(lease) for attempt, lease in presented}
    wanted = {pair: token for pair, token in wanted.items() if token is not None and _uuid(pair[0][0])}
    if not wanted:
        return {}
    rows = JobExecution.objects.filter(
        job_id__in={job_id for (job_id, _), _ in wanted}, lease_token__in=set(wanted.values())
    ).values_list("job_id", "attempt", "lease_token", "worker_id")
    holders = {((str(job_id), attempt), token): worker_id for job_id, attempt, token, worker_id in rows}
    return {pair: holders[(pair[0], token)] for pair, token in wanted.items() if (pair[0], token) in holders}


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def report_started(job_id: JobKey, attempt: int, worker_id: str, running_for_ms: int = 0) -> bool:
    return attempts.start(job_id, attempt, worker_id, running_for_ms)


def report_progress(job_id: JobKey, attempt: int, progress: int, stage: str = "") -> bool:
    return attempts.record_progress(job_id, attempt, progress, stage)


def apply_succeeded(
    job_id: JobKey, attempt: int, result: JsonValue, runtime_ms: int | None = None
) -> Job | None:
    """A completed attempt; a result the database cannot store (too large, NUL characters, lone
    surrogates) fails the attempt for good, saying why, rather than failing the report forever."""
    refused = why_unstorable(result, settings.JOB_RESULT_MAX_BYTES)
    if refused is not None:
        error = attempt_error(
            "RESULT_UNSTORABLE", f"the job's result cannot be stored: {refused}", "permanent"
        )
        return attempts.fail(job_id, attempt, error, ExecutionOutcome.FAILED, runtime_ms)
    return attempts.complete(job_id, attempt, result, runtime_ms)


def apply_failed(
    job_id: JobKey, attempt: int, error: JsonObject | None, runtime_ms: int | None = None
) -> Job | None:
    """A failed attempt (as its worker reports it), retried or dead-lettered by
    `jobqueue.attempts.fail`'s rules."""
    return _fail_storably(job_id, attempt, error, ExecutionOutcome.FAILED, runtime_ms)


def _fail_storably(
    job_id: JobKey, attempt: int, error: JsonObject | None, outcome: ExecutionOutcome, runtime_ms: int | None
) -> Job | None:
    """`attempts.fail`, with an error the database cannot store replaced by one saying so (of the
    same class)."""
    if why_unstorable(error, settings.JOB_RESULT_MAX_BYTES) is not None:
        error_class = error.get("class") if isinstance(error, dict) else None
        error = attempt_error(
            "ERROR_UNSTORABLE",
            "the worker's error report could not be stored",
            "permanent" if error_class == "permanent" else "transient",
        )
    return attempts.fail(job_id, attempt, error, outcome, runtime_ms)


def apply_cancelled(job_id: JobKey, attempt: int, runtime_ms: int | None = None) -> Job | None:
    """The worker stopped the job because its cancellation was requested."""
    return attempts.cancel(job_id, attempt, runtime_ms)


def report_succeeded(job_id: JobKey, attempt: int, result: JsonValue, runtime_ms: int | None = None) -> bool:
    with transaction.atomic():
        return _freed(apply_succeeded(job_id, attempt, result, runtime_ms))


def report_failed(
    job_id: JobKey,
    attempt: int,
    error: JsonObject | None,
    outcome: ExecutionOutcome = ExecutionOutcome.FAILED,
    runtime_ms: int | None = None,
) -> bool:
    with transaction.atomic():
        return _freed(_fail_storably(job_id, attempt, error, outcome, runtime_ms))


def worker_lost(job_id: JobKey, attempt: int, message: str) -> bool:
    """The control plane declares an attempt dead with its worker (a transient failure)."""
    with transaction.atomic():
        return _freed(attempts.lost_with_worker(job_id, attempt, message))


def report_cancelled(job_id: JobKey, attempt: int, runtime_ms: int | None = None) -> bool:
    with transaction.atomic():
        return _freed(apply_cancelled(job_id, attempt, runtime_ms))


def apply_handed_back(job_id: JobKey, attempt: int, runtime_ms: int | None = None) -> Job | None:
    """A worker shutting down stopped the job unfinished: back to pending, without using a retry
    (nothing went wrong with the job), offered to another worker once committed. The attempt is
    recorded. Its worker is stopping: its slot is not refilled."""
    error = attempt_error("HANDED_BACK", "its worker shut down before finishing it")
    job = attempts.return_to_pending(
        job_id,
        attempt,
        ACTIVE_STATUSES,
        "handed_back",
        error,
        progress=0,
        stage="",
        **attempts.started_before(runtime_ms),
    )
    if job is not None:
        dispatch_on_commit([job.pk])
    return job


def report_handed_back(job_id: JobKey, attempt: int, runtime_ms: int | None = None) -> bool:
    with transaction.atomic():
        return apply_handed_back(job_id, attempt, runtime_ms) is not None


def _freed(job: Job | None) -> bool:
    """The attempt ended (or the report was stale: False); refill its worker's freed slot."""
    if job is None:
        return False
    refill([job.worker_id])
    return True


def refill(worker_ids: Iterable[str | None]) -> None:
    """Offer each worker whose slot freed its next jobs, in the caller's transaction (in id order, as
    every multi-worker locker does); a worker that got none and runs nothing is idle again, and is
    offered once more after commit (`fill_on_commit`: a job submitted meanwhile)."""
    left_empty = []
    for worker_id in sorted({worker_id for worker_id in worker_ids if worker_id}):
        if not fill_worker(worker_id):
            left_empty.append(worker_id)
            Worker.objects.filter(pk=worker_id, status=WorkerStatus.BUSY).exclude(
                pk__in=Job.objects.filter(worker_id=worker_id, status__in=ACTIVE_STATUSES).values("worker_id")
            ).update(status=WorkerStatus.IDLE)
    if left_empty:
        fill_on_commit(left_empty)
