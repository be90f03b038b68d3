"""The dispatcher: matches pending jobs to workers with free slots, in Postgres.

Order is exact: highest effective priority, then the oldest workflow (or job) time, then submission
order. A worker only ever receives a job whose every requirement it satisfies. Worker rows are locked
(waiting) while their slots are filled and job rows with `FOR UPDATE SKIP LOCKED`, so concurrent
dispatchers can neither assign one job twice nor overfill a worker. See docs/dispatch.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models.functions import Now

from gpu_worker import protocol
from jobqueue.events import EventType
from jobqueue.models import ExecutionOutcome, Job, JobStatus
from jobqueue.transitions import ExecutionChange, transition
from machines.models import Worker, heard_since

logger = logging.getLogger(__name__)

# A job matches a worker (`j`, `w`) when the worker runs its type, satisfies every requirement, and
# may serve its customer: a worker with an allow-list serves only those customers (it is dedicated
# to them), one with a deny-list never serves those, and a `customer_isolation: strict` job runs only
# on a worker dedicated to its customer. The one statement of "eligible", used by every query here.
JOB_MATCHES_WORKER = """
    j.type IN (SELECT jsonb_array_elements_text(w.job_types))
    AND w.capabilities @> j.required_capabilities
    AND w.model_names @> j.required_models
    AND (j.required_gpu_memory_gb IS NULL OR j.required_gpu_memory_gb <= w.gpu_memory_gb)
    AND (j.required_pool IS NULL OR j.required_pool = w.pool)
    AND (jsonb_array_length(w.customer_allowlist) = 0 OR w.customer_allowlist ? j.customer_id)
    AND (j.customer_id IS NULL OR NOT w.customer_denylist ? j.customer_id)
    AND (NOT j.requires_dedicated_worker OR w.customer_allowlist ? j.customer_id)
"""

# One statement assigns the worker its best eligible pending jobs, up to its free slots, with their
# execution rows and `job_assigned` events. The slot count is read here, after the worker row was
# locked by the previous statement: a statement that waited on a lock keeps its pre-wait snapshot.
_ASSIGN_BEST_JOBS = f"""
    WITH picked AS (
        SELECT j.id FROM jobqueue_job j, machines_worker w
        WHERE w.id = %(worker_id)s AND j.status = 'pending' AND {JOB_MATCHES_WORKER}
        ORDER BY j.effective_priority DESC, j.order_time, j.submit_seq
        LIMIT greatest(0, %(slots)s - (SELECT count(*) FROM jobqueue_job a
                                       WHERE a.worker_id = %(worker_id)s AND a.status IN ('assigned', 'running')))
        FOR UPDATE OF j SKIP LOCKED
    ), assigned AS (
        UPDATE jobqueue_job j
        SET status = 'assigned', attempt = j.attempt + 1, worker_id = %(worker_id)s,
            machine_id = %(machine_id)s, assigned_at = clock_timestamp(),
            updated_at = clock_timestamp(), started_at = NULL, progress = 0, stage = ''
        FROM picked WHERE j.id = picked.id
        RETURNING j.*
    ), executions AS (
        INSERT INTO jobqueue_jobexecution (job_id, attempt, worker_id, machine_id, outcome, assigned_at)
        SELECT id, attempt, worker_id, machine_id, 'assigned', clock_timestamp() FROM assigned
    ), events AS (
        INSERT INTO jobqueue_event
            (type, version, created_at, job_id, workflow_id, machine_id, worker_id, correlation_id, payload)
        SELECT 'job_assigned', 1, clock_timestamp(), id, workflow_id, machine_id, worker_id, correlation_id,
               jsonb_build_object('status', status, 'attempt', attempt, 'queue', %(queue)s::text)
        FROM assigned
    ), busy AS (
        UPDATE machines_worker SET last_assigned_at = clock_timestamp(), status = 'busy'
        WHERE id = %(worker_id)s AND EXISTS (SELECT 1 FROM assigned)
    )
    SELECT * FROM assigned ORDER BY effective_priority DESC, order_time, submit_seq
"""

# Workers taking work: live (heard from since `heard_since`), not draining, their engine healthy.
TAKES_WORK = """
    w.status <> 'offline' AND w.last_seen_at >= %(heard_since)s AND NOT w.draining AND w.engine_healthy
"""

# ... with a free slot.
_LIVE_WORKERS_WITH_A_FREE_SLOT = f"""
    SELECT w.id FROM machines_worker w
    WHERE {TAKES_WORK}
      AND (SELECT count(*) FROM jobqueue_job a
           WHERE a.worker_id = w.id AND a.status IN ('assigned', 'running')) < w.slots
"""

# ... that could run at least one of the given pending jobs.
_FREE_WORKERS_FOR_JOBS = f"""
    {_LIVE_WORKERS_WITH_A_FREE_SLOT}
      AND EXISTS (
        SELECT 1 FROM jobqueue_job j
        WHERE j.id = ANY(%(job_ids)s) AND j.status = 'pending' AND {JOB_MATCHES_WORKER})
    ORDER BY w.last_assigned_at NULLS FIRST
"""

_FREE_WORKERS = f"""
    {_LIVE_WORKERS_WITH_A_FREE_SLOT}
    ORDER BY w.last_assigned_at NULLS FIRST
"""


@dataclass(frozen=True)
class Assignment:
    job_id: str
    attempt: int
    worker_id: str
    queue: str
    spec: dict


def fill_worker(worker_id: str) -> list[Assignment]:
    """Give the worker its best eligible pending jobs, up to its free slots.

    Runs in the caller's transaction when there is one (so a report that frees a slot and the
    assignment of the next job commit together); messages are published after commit.
    """
    # No savepoint: a failure here fails the caller's whole transaction, which is what we want.
    with transaction.atomic(savepoint=False):
        # Waits for a concurrent dispatcher of this worker to commit, so slots are never overfilled.
        worker = Worker.objects.select_for_update().filter(pk=worker_id).first()
        if worker is None or not worker.takes_work:
            return []
        assigned = list(Job.objects.raw(_ASSIGN_BEST_JOBS, _match_params(worker)))
        if not assigned:
            return []
        assignments = [
            Assignment(str(job.id), job.attempt, worker.id, worker.queue, job_spec(job)) for job in assigned
        ]
        transaction.on_commit(lambda: publish_assignments(assignments))
        return assignments


def dispatch_jobs(job_ids: Iterable) -> list[Assignment]:
    """Find workers for newly pending jobs. Each candidate worker takes its own best jobs,
    which keeps global priority order even when a better job than these is also waiting."""
    ids = [str(job_id) for job_id in job_ids]
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_FREE_WORKERS_FOR_JOBS, {"job_ids": ids, "heard_since": heard_since()})
        worker_ids = [row[0] for row in cursor.fetchall()]
    assignments: list[Assignment] = []
    for worker_id in worker_ids:
        assignments.extend(fill_worker(worker_id))
        if {a.job_id for a in assignments} >= set(ids):
            break
        if not Job.objects.filter(pk__in=ids, status=JobStatus.PENDING).exists():
            break  # taken by another dispatcher meanwhile
    return assignments


def dispatch_all() -> list[Assignment]:
    """Offer every live worker with a free slot its best jobs (beat's safety net)."""
    with connection.cursor() as cursor:
        cursor.execute(_FREE_WORKERS, {"heard_since": heard_since()})
        worker_ids = [row[0] for row in cursor.fetchall()]
    assignments: list[Assignment] = []
    for worker_id in worker_ids:
        assignments.extend(fill_worker(worker_id))
    return assignments


def dispatch_on_commit(job_ids: list) -> None:
    """Dispatch these jobs once the transaction that made them pending has committed."""
    transaction.on_commit(lambda: _dispatch_safely(job_ids))


def _dispatch_safely(job_ids: list) -> None:
    try:
        dispatch_jobs(job_ids)
    except Exception:
        # The job is durable as pending; the beat sweep will dispatch it.
        logger.exception("dispatch after commit failed for %s jobs; the sweep will retry", len(job_ids))


def _match_params(worker: Worker) -> dict:
    return {
        "worker_id": worker.id,
        "machine_id": worker.machine_id,
        "queue": worker.queue,
        "slots": worker.slots,
    }


def job_spec(job: Job) -> dict:
    """What a worker needs to run one attempt: everything but database-only fields."""
    return {
        "job_id": str(job.id),
        "attempt": job.attempt,
        "type": job.type,
        "payload": job.payload,
        "ctx": job.ctx,
        "requirements": job.requirements,
        "timeout_seconds": job.timeout_seconds,
        "priority": job.effective_priority,
        "workflow_id": job.workflow_id,
        "metadata": job.metadata,
        "inputs": job.inputs,
    }


def publish_assignments(assignments: list[Assignment]) -> None:
    """Send each assignment to its worker's own queue (priority order was decided here, not by the broker)."""
    from settings.celery import app

    for assignment in assignments:
        try:
            app.send_task(protocol.RUN_JOB_TASK, kwargs={"spec": assignment.spec}, queue=assignment.queue)
        except Exception as exc:
            logger.exception("publishing job %s to %s failed", assignment.job_id, assignment.queue)
            unassign_unpublished(assignment.job_id, assignment.attempt, f"{type(exc).__name__}: {exc}")


def unassign_unpublished(job_id, attempt: int, reason: str) -> bool:
    """An assignment whose message could not be published (or died with the broker) never reached
    its worker: the job goes back to pending in its place, without using a retry, and is offered
    again once the broker answers. The attempt is recorded as lost."""
    error = {"code": "NOT_DELIVERED", "message": reason[:500], "class": "transient"}
    return return_to_pending(job_id, attempt, {JobStatus.ASSIGNED}, "not_delivered", error) is not None


def return_to_pending(
    job_id,
    attempt: int,
    from_statuses: set[JobStatus] | frozenset[JobStatus],
    reason: str,
    error: dict,
    **changes,
) -> Job | None:
    """The attempt ended through no fault of the job's: back to pending without using a retry, the
    attempt recorded as lost with `error`, a `job_queued` event saying why. None if it had moved on."""
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
