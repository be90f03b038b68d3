"""The dispatcher: matches pending jobs to workers with free slots, in Postgres.

Order is exact: highest effective priority; within a priority, tenants by fair share and within the
limits set on them (dispatch/scheduling.py, docs/scheduling.md); within a tenant, the oldest workflow
(or job) time, then submission order. A worker only ever receives a job whose every requirement it
satisfies. Worker rows are locked
(waiting) while their slots are filled and job rows with `FOR UPDATE SKIP LOCKED`, so concurrent
dispatchers can neither assign one job twice nor overfill a worker. See docs/dispatch.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction

from core.db import columns_of, fetch_models, prepared_cursor
from dispatch.matching import (
    JOB_MATCHES_WORKER,
    TAKES_WORK,
    customer_served,
    shape_matches_worker,
    takes_work,
)
from dispatch.scheduling import (
    TENANT_ROOM,
    TENANT_RUNNING,
    fair_share_sql,
    group_room_sql,
)
from events.recording import job_events_sql
from events.types import EventType
from jobqueue import attempts
from jobqueue.models import (
    ACTIVE_STATUSES,
    PENDING_POOL_SQL,
    Job,
    JobKey,
    JobStatus,
    dispatch_order_sql,
    statuses_sql,
)
from machines.models import Worker, heard_since
from wire import names
from wire.job_spec import JobSpec
from wire.json_types import JsonObject
from wire.reports import attempt_error

logger = logging.getLogger(__name__)
K = TypeVar("K")  # what is dispatched after a commit: job ids, or worker ids

# One statement assigns the worker its best eligible pending jobs, up to its free slots, with their
# execution rows and `job_assigned` events. The slot count is read here, after the worker row was
# locked by the previous statement: a statement that waited on a lock keeps its pre-wait snapshot.
_ACTIVE_ON_WORKER = (
    "(SELECT count(*) FROM jobqueue_job a WHERE a.worker_id = {worker} AND a.status IN "
    + statuses_sql(ACTIVE_STATUSES)
    + ")"
)
_FREE_SLOTS = f"greatest(0, %(slots)s - {_ACTIVE_ON_WORKER.format(worker='%(worker_id)s')})"
# The ranges of the `job_dispatch_by_shape` index a worker `w` serves: each type it runs, for its own
# pool and for any pool. Jobs outside them, however many, are never read.
_SERVED_RANGES = """
    LATERAL (SELECT DISTINCT jsonb_array_elements_text(w.job_types) AS type) t,
    LATERAL (SELECT DISTINCT unnest(ARRAY['', w.pool]) AS pool) p
"""


def _ranges(workers: str) -> str:
    """The CTE `ranges (range_type, range_pool)`: the ranges the workers `w` matching `workers` serve."""
    return f"""ranges AS (
        SELECT DISTINCT t.type AS range_type, p.pool AS range_pool
        FROM machines_worker w, {_SERVED_RANGES} WHERE {workers}
    )"""


def _in_range(shapes: str) -> str:
    """Pending jobs `j` in the range of the row `shapes` (its `range_type` and `range_pool`)."""
    return (
        f"j.status = 'pending' AND j.type = {shapes}.range_type"
        f" AND {PENDING_POOL_SQL.format(alias='j')} = {shapes}.range_pool"
    )


# What `matching.shape_matches_worker` reads of a shape (the fields of one of its jobs), and what the
# limits read of a group.
_GROUP_FIELDS = """j.shape, j.type, j.required_pool, j.required_capabilities, j.required_models,
    j.required_gpu_memory_gb, j.requires_dedicated_worker, j.tenant_id, j.customer_id,
    j.concurrency_key, j.concurrency_limit"""
_GROUP_KEY = "(j.shape, j.tenant_id, j.concurrency_key)"
# `groups`: one row per group of the pending jobs (a shape, one tenant's, of one concurrency key) in
# the ranges of the CTE `ranges (range_type, range_pool)`, found by skipping through the index
# (Postgres has no skip scan): one descent per group, however many jobs it holds. Its row is its best
# job's: the index orders each group's jobs in dispatch order.
_PENDING_GROUPS = f"""
    groups AS (
        SELECT r.range_type, r.range_pool, head.* FROM ranges r, LATERAL (
            SELECT {_GROUP_FIELDS} FROM jobqueue_job j WHERE {_in_range("r")}
            ORDER BY j.shape, j.tenant_id, j.concurrency_key LIMIT 1
        ) head
        UNION ALL
        SELECT s.range_type, s.range_pool, head.* FROM groups s, LATERAL (
            SELECT {_GROUP_FIELDS} FROM jobqueue_job j
            WHERE {_in_range("s")} AND {_GROUP_KEY} > (s.shape, s.tenant_id, s.concurrency_key)
            ORDER BY j.shape, j.tenant_id, j.concurrency_key LIMIT 1
        ) head
    )
"""


def _in_group(group: str) -> str:
    return (
        f"{_in_range(group)} AND j.shape = {group}.shape AND j.tenant_id = {group}.tenant_id"
        f" AND j.concurrency_key = {group}.concurrency_key"
    )


# The best jobs of each group the worker can run, as many as its free slots and the group's limits
# allow, are the candidates: a group it cannot run, or one at a limit, costs one index entry, whatever
# its depth. Each job is still checked in full (a hash can collide), and rows another dispatcher holds
# are skipped, as everywhere. The candidates are then taken by priority, fair share between tenants
# (within each tenant's own limit), and each tenant's own order (dispatch/scheduling.py).
def _assign_best_jobs_sql(fair_share: bool) -> str:
    return f"""
    WITH RECURSIVE {_ranges("w.id = %(worker_id)s")}, {_PENDING_GROUPS}, candidates AS (
        SELECT best.* FROM machines_worker w, groups s,
            LATERAL (SELECT {group_room_sql("s")} AS room) g,
            LATERAL (
                SELECT j.id, j.tenant_id, j.effective_priority, j.order_time, j.submit_seq
                FROM jobqueue_job j
                WHERE {_in_group("s")} AND {JOB_MATCHES_WORKER}
                ORDER BY {dispatch_order_sql("j")}
                LIMIT least({_FREE_SLOTS}, g.room)
                FOR UPDATE OF j SKIP LOCKED
            ) best
        WHERE w.id = %(worker_id)s AND {shape_matches_worker("s")} AND coalesce(g.room, 1) > 0
    ), tenants AS (
        SELECT t.id, t.fair_share_weight AS weight, {TENANT_ROOM} AS room, {TENANT_RUNNING} AS running
        FROM accounts_tenant t WHERE t.id IN (SELECT tenant_id FROM candidates)
    ), ranked AS (
        SELECT c.*, t.weight, t.room, t.running,
            row_number() OVER (PARTITION BY c.tenant_id ORDER BY {dispatch_order_sql("c")}) AS nth
        FROM candidates c JOIN tenants t ON t.id = c.tenant_id
    ), picked AS (
        SELECT ranked.id FROM ranked WHERE ranked.room IS NULL OR ranked.nth <= ranked.room
        ORDER BY ranked.effective_priority DESC, {fair_share_sql("ranked", fair_share)}, ranked.order_time,
            ranked.submit_seq
        LIMIT {_FREE_SLOTS}
    ), assigned AS (
        UPDATE jobqueue_job j
        SET status = 'assigned', attempt = j.attempt + 1, worker_id = %(worker_id)s,
            machine_id = %(machine_id)s, assigned_at = clock_timestamp(),
            updated_at = clock_timestamp(), started_at = NULL, progress = 0, stage = ''
        WHERE j.id = ANY(ARRAY(SELECT id FROM picked))  -- by primary key: a join would scan the table
        RETURNING {columns_of(Job, "j")}
    ), executions AS (
        INSERT INTO jobqueue_jobexecution
            (job_id, attempt, worker_id, machine_id, outcome, assigned_at, lease_token)
        SELECT id, attempt, worker_id, machine_id, 'assigned', clock_timestamp(), gen_random_uuid()
        FROM assigned
        RETURNING job_id, lease_token
    ), events AS (
        {job_events_sql("assigned", "%(event_type)s", "jsonb_build_object('queue', %(queue)s::text)")}
    ), busy AS (
        UPDATE machines_worker SET last_assigned_at = clock_timestamp(), status = 'busy'
        WHERE id = %(worker_id)s AND EXISTS (SELECT 1 FROM assigned)
    )
    SELECT assigned.*, executions.lease_token FROM assigned JOIN executions ON executions.job_id = assigned.id
    ORDER BY {dispatch_order_sql("assigned")}
"""


# With fair share, and without (SCHEDULING_FAIR_SHARE): tenants in one first-come order.
_ASSIGN_BEST_JOBS = {fair_share: _assign_best_jobs_sql(fair_share) for fair_share in (True, False)}

# ... with a free slot.
# (The active jobs of every worker counted in one pass over `job_active_by_worker`: a count per
# worker row cost ~2 ms per dispatch at 1,000 live workers.)
_LIVE_WORKERS_WITH_A_FREE_SLOT = f"""
    SELECT w.id FROM machines_worker w
    LEFT JOIN (
        SELECT a.worker_id, count(*) AS active FROM jobqueue_job a
        WHERE a.status IN {statuses_sql(ACTIVE_STATUSES)} AND a.worker_id IS NOT NULL GROUP BY a.worker_id
    ) busy ON busy.worker_id = w.id
    WHERE {TAKES_WORK} AND coalesce(busy.active, 0) < w.slots
"""

# ... that could run at least one of the given pending jobs.
_FREE_WORKERS_FOR_JOBS = f"""
    {_LIVE_WORKERS_WITH_A_FREE_SLOT}
      AND EXISTS (
        SELECT 1 FROM jobqueue_job j
        WHERE j.id = ANY(%(job_ids)s) AND j.status = 'pending' AND {JOB_MATCHES_WORKER})
    ORDER BY w.last_assigned_at NULLS FIRST
"""

# ... that could run at least one pending job (a fleet idle for want of work costs the sweep nothing):
# the groups of the ranges free workers serve are found once, then each worker tests them.
_FREE_WORKERS_WITH_WORK = f"""
    WITH RECURSIVE free AS ({_LIVE_WORKERS_WITH_A_FREE_SLOT}),
        {_ranges("w.id IN (SELECT id FROM free)")}, {_PENDING_GROUPS},
        open_groups AS (SELECT * FROM groups s WHERE coalesce({group_room_sql("s")}, 1) > 0)
    SELECT w.id FROM machines_worker w
    WHERE w.id IN (SELECT id FROM free) AND EXISTS (
        SELECT 1 FROM open_groups s WHERE {shape_matches_worker("s")} AND EXISTS (
            SELECT 1 FROM jobqueue_job j WHERE {_in_group("s")} AND {customer_served()}
        )
    )
    ORDER BY w.last_assigned_at NULLS FIRST
"""


@dataclass(frozen=True)
class Assignment:
    job_id: str
    attempt: int
    worker_id: str
    queue: str
    spec: JsonObject


def fill_worker(worker_id: str) -> list[Assignment]:
    """Give the worker its best eligible pending jobs, up to its free slots.

    Runs in the caller's transaction when there is one (so a report that frees a slot and the
    assignment of the next job commit together); messages are published after commit.
    """
    # No savepoint: a failure here fails the caller's whole transaction, which is what we want.
    with transaction.atomic(savepoint=False):
        # Waits for a concurrent dispatcher of this worker to commit, so slots are never overfilled.
        worker = Worker.objects.select_for_update().filter(pk=worker_id).first()
        if worker is None or not takes_work(worker):
            return []
        with prepared_cursor() as cursor:
            cursor.execute(_ASSIGN_BEST_JOBS[settings.SCHEDULING_FAIR_SHARE], _match_params(worker))
            assigned = fetch_models(Job, cursor)
        if not assigned:
            return []
        assignments = [
            Assignment(str(job.id), job.attempt, worker.id, worker.queue, job_spec(job)) for job in assigned
        ]
        transaction.on_commit(lambda: publish_assignments(assignments))
        return assignments


def dispatch_jobs(job_ids: Iterable[JobKey]) -> list[Assignment]:
    """Find workers for newly pending jobs. Each candidate worker takes its own best jobs,
    which keeps global priority order even when a better job than these is also waiting."""
    ids = [str(job_id) for job_id in job_ids]
    if not ids:
        return []
    # Planned each time, unlike the offer: its generic plan (for an array of ids of unknown length)
    # made a submit's dispatch three times slower in the fleet benchmark.
    with connection.cursor() as cursor:
        cursor.execute(_FREE_WORKERS_FOR_JOBS, {"job_ids": ids, **_liveness_params()})
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
    """Offer every live worker with a free slot and work it could run its best jobs (beat's safety net)."""
    with prepared_cursor() as cursor:
        cursor.execute(_FREE_WORKERS_WITH_WORK, _liveness_params())
        worker_ids = [row[0] for row in cursor.fetchall()]
    assignments: list[Assignment] = []
    for worker_id in worker_ids:
        assignments.extend(fill_worker(worker_id))
    return assignments


def fill_on_commit(worker_ids: list[str]) -> None:
    """Offer these workers their best jobs again once the caller's transaction commits.

    A report's transaction refills the slot it frees, but a job that becomes pending while that
    transaction is open is invisible to it, and that job's own dispatch (after its commit) sees the
    worker still busy: each would miss the other. Looking again after commit closes the gap: whichever
    of the two commits last sees the other's change."""
    transaction.on_commit(lambda: _safely(_fill_each, worker_ids, "workers"))


def dispatch_on_commit(job_ids: list[JobKey]) -> None:
    """Dispatch these jobs once the transaction that made them pending has committed."""
    transaction.on_commit(lambda: _safely(dispatch_jobs, job_ids, "jobs"))


def _fill_each(worker_ids: list[str]) -> None:
    for worker_id in worker_ids:
        fill_worker(worker_id)


def _safely(dispatch: Callable[[list[K]], object], ids: list[K], what: str) -> None:
    """`dispatch(ids)` after a commit: the jobs are durable as pending whatever happens here, and the
    beat sweep dispatches what a failure left."""
    try:
        dispatch(ids)
    except Exception:
        logger.exception(
            "%s after commit failed for %s %s; the sweep will retry", dispatch.__name__, len(ids), what
        )


def _liveness_params() -> JsonObject:
    return {"heard_since": heard_since()}


def _match_params(worker: Worker) -> JsonObject:
    return {
        "worker_id": worker.id,
        "machine_id": worker.machine_id,
        "queue": worker.queue,
        "slots": worker.slots,
        "event_type": EventType.JOB_ASSIGNED.value,
    }


def job_spec(job: Job) -> JsonObject:
    """What a worker needs to run one attempt (`wire.job_spec`): everything but database-only fields,
    and the attempt's lease token (read with the assignment, `_ASSIGN_BEST_JOBS`), which its reports
    carry."""
    return JobSpec(
        job_id=str(job.id),
        attempt=job.attempt,
        lease=str(job.lease_token),  # type: ignore[attr-defined]  # a column of the raw query
        type=job.type,
        payload=job.payload,
        ctx=job.ctx,
        requirements=job.requirements,
        timeout_seconds=job.timeout_seconds,
        priority=job.effective_priority,
        workflow_id=str(job.workflow_id) if job.workflow_id is not None else None,
        metadata=job.metadata,
        inputs=job.inputs,
    ).as_message()


def publish_assignments(assignments: list[Assignment]) -> None:
    """Send each assignment to its worker's own queue (priority order was decided here, not by the broker)."""
    from core.celery_app import app

    for assignment in assignments:
        try:
            app.send_task(
                names.RUN_JOB_TASK,
                kwargs={"spec": assignment.spec},
                # What Celery shows of it (headers, events, Flower): the job, never its lease.
                kwargsrepr=f"{{'spec': {{'job_id': {assignment.job_id!r}, 'attempt': {assignment.attempt}}}}}",
                queue=assignment.queue,
            )
        except Exception as exc:
            logger.exception("publishing job %s to %s failed", assignment.job_id, assignment.queue)
            unassign_unpublished(assignment.job_id, assignment.attempt, f"{type(exc).__name__}: {exc}")


def unassign_unpublished(job_id: JobKey, attempt: int, reason: str) -> bool:
    """An assignment whose message could not be published (or died with the broker) never reached
    its worker: the job goes back to pending in its place, without using a retry, and is offered
    again once the broker answers. The attempt is recorded as lost."""
    error = attempt_error("NOT_DELIVERED", reason[:500])
    return (
        attempts.return_to_pending(job_id, attempt, {JobStatus.ASSIGNED}, "not_delivered", error) is not None
    )
