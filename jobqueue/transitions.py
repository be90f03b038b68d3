"""The job state machine, applied as compare-and-set updates.

Every change of `Job.status` goes through `transition()` (assignment, its batch form, through
`dispatch.fill_worker`): one `UPDATE ... WHERE status IN (...) AND attempt = ... RETURNING *` that
changes nothing when a duplicate or late report arrives, so terminal states are never left and a
stale attempt never writes. Its event row and execution row are written by the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, models
from django.db.models.functions import Now
from psycopg.types.json import Jsonb

from core.db import SqlParameters, columns_of, fetch_models, prepared_cursor
from events.recording import job_events_sql
from events.schemas import validate_event
from jobqueue.models import ExecutionOutcome, Job, JobKey, JobStatus
from wire.json_types import JsonObject

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SCHEDULED: frozenset({JobStatus.PENDING, JobStatus.CANCELLED}),
    JobStatus.WAITING: frozenset({JobStatus.PENDING, JobStatus.CANCELLED}),
    JobStatus.PENDING: frozenset({JobStatus.ASSIGNED, JobStatus.CANCELLED}),
    JobStatus.ASSIGNED: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.PENDING,
            JobStatus.SCHEDULED,
        }
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING, JobStatus.SCHEDULED}
    ),
    JobStatus.COMPLETED: frozenset(),
    # The one way out of a terminal state: an operator requeues the job's dead letter
    # (`dead_letters.requeue`), which opens a fresh attempt budget under the same job id.
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELLED: frozenset(),
}

# What a transition returns: every column by name (a prepared statement must not return `*`).
_JOB_COLUMNS = columns_of(Job, "jobqueue_job")


class IllegalTransition(Exception):
    """The state machine has no such edge; this is a programming error, not a race."""


def sources_for(target: JobStatus, candidates: set[JobStatus] | frozenset[JobStatus]) -> list[JobStatus]:
    sources = [s for s in candidates if target in ALLOWED_TRANSITIONS[s]]
    if len(sources) != len(candidates):
        illegal = sorted(set(candidates) - set(sources))
        raise IllegalTransition(f"no transition from {illegal} to {target}")
    return sources


@dataclass(frozen=True)
class StartedBefore:
    """Set a start time `runtime_ms` before now. Workers measure runtimes on their own monotonic
    clock, so their clock skew does not matter, and with a final report `completed_at - started_at`
    is exactly the runtime the worker measured, however long the report waited in the queue."""

    runtime_ms: int


@dataclass(frozen=True)
class ExecutionChange:
    """What a transition does to the attempt's `JobExecution` row, in the same statement."""

    outcome: ExecutionOutcome
    error: JsonObject | None = None
    finished: bool = True

    @classmethod
    def started(cls) -> ExecutionChange:
        return cls(ExecutionOutcome.RUNNING, finished=False)


_EXECUTION_STARTED = """
    UPDATE jobqueue_jobexecution e SET outcome = %s, started_at = j.started_at
    FROM j WHERE e.job_id = j.id AND e.attempt = j.attempt AND e.outcome = 'assigned'
"""
_EXECUTION_FINISHED = """
    UPDATE jobqueue_jobexecution e
    SET outcome = %s, error = %s, finished_at = clock_timestamp(),
        started_at = coalesce(j.started_at, e.started_at),
        duration_ms = greatest(0, (extract(epoch FROM clock_timestamp()
                                           - coalesce(j.started_at, e.started_at, e.assigned_at)) * 1000)::bigint)
    FROM j WHERE e.job_id = j.id AND e.attempt = j.attempt
"""


def transition(
    job_id: JobKey,
    *,
    from_statuses: set[JobStatus] | frozenset[JobStatus],
    to: JobStatus,
    on_attempt: int | None = None,
    event: str | None = None,
    event_payload: JsonObject | None = None,
    execution: ExecutionChange | None = None,
    **changes: Any,
) -> Job | None:
    """Move a job to `to` if it is still in one of `from_statuses` (and on attempt `on_attempt`).

    `changes` are other fields to set: plain values, or `Now()` for the current time. (Times are
    `clock_timestamp()`, taken after any row lock was waited for, so a job that a concurrent report
    just started is never completed "before" it started.) When the
    guard matches, the same statement also writes `event` (payload: status, attempt and
    `event_payload`) and applies `execution` to the attempt's execution row: one round trip.
    Returns the updated job, or None when the guard did not match (a late or duplicate report).
    """
    assignments = ["status = %s", "updated_at = clock_timestamp()"]
    params: SqlParameters = [to]
    for name, value in changes.items():
        field = Job._meta.get_field(name)
        assert isinstance(field, models.Field)  # a column of the job row, not a relation's reverse side
        if isinstance(value, Now):
            assignments.append(f'"{field.column}" = clock_timestamp()')
        elif isinstance(value, StartedBefore):
            assignments.append(f'"{field.column}" = clock_timestamp() - make_interval(secs => %s)')
            params.append(max(0, value.runtime_ms) / 1000)
        else:
            assignments.append(f'"{field.column}" = %s')
            params.append(field.get_db_prep_save(value, connection))
    guard = "id = %s AND status = ANY(%s)"
    params += [Job._meta.pk.get_db_prep_value(job_id, connection), sources_for(to, from_statuses)]
    if on_attempt is not None:
        guard += " AND attempt = %s"
        params.append(on_attempt)
    statements = [
        f"j AS (UPDATE jobqueue_job SET {', '.join(assignments)} WHERE {guard} RETURNING {_JOB_COLUMNS})"
    ]
    if execution is not None:
        if execution.finished:
            statements.append(f"x AS ({_EXECUTION_FINISHED})")
            params += [execution.outcome, Jsonb(execution.error) if execution.error is not None else None]
        else:
            statements.append(f"x AS ({_EXECUTION_STARTED})")
            params.append(execution.outcome)
    if event is not None:
        # The statement adds the job's status and attempt; the rest is checked here.
        validate_event(event, {"status": to, "attempt": on_attempt or 0, **(event_payload or {})})
        statements.append(f"ev AS ({job_events_sql('j', '%s', '%s::jsonb')})")
        params += [event, Jsonb(event_payload or {})]
    sql = f"WITH {', '.join(statements)} SELECT * FROM j"
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        updated = fetch_models(Job, cursor)
    return updated[0] if updated else None
