"""The job state machine, applied as compare-and-set updates.

Every change of `Job.status` goes through `transition()`: one `UPDATE ... WHERE status IN (...) AND
attempt = ... RETURNING *` that changes nothing when a duplicate or late report arrives, so terminal
states are never left and a stale attempt never writes.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models.functions import Now

from jobqueue.models import Job, JobStatus

S = JobStatus
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.WAITING: frozenset({S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED, S.PENDING, S.SCHEDULED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.PENDING, S.SCHEDULED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    """The state machine has no such edge; this is a programming error, not a race."""


def sources_for(target: JobStatus, candidates: set[JobStatus] | frozenset[JobStatus]) -> list[str]:
    sources = [s for s in candidates if target in ALLOWED_TRANSITIONS[s]]
    if len(sources) != len(candidates):
        illegal = sorted(set(candidates) - set(sources))
        raise IllegalTransition(f"no transition from {illegal} to {target}")
    return sources


def transition(
    job_id: Any,
    *,
    from_statuses: set[JobStatus] | frozenset[JobStatus],
    to: JobStatus,
    on_attempt: int | None = None,
    **changes: Any,
) -> Job | None:
    """Move a job to `to` if it is still in one of `from_statuses` (and on attempt `on_attempt`).

    `changes` are other fields to set: plain values, or `Now()` for the statement's time.
    Returns the updated job, or None when the guard did not match (the report was late or a duplicate).
    """
    assignments = ["status = %s", "updated_at = statement_timestamp()"]
    params: list[Any] = [to]
    for name, value in changes.items():
        field = Job._meta.get_field(name)
        if isinstance(value, Now):
            assignments.append(f'"{field.column}" = statement_timestamp()')
        else:
            assignments.append(f'"{field.column}" = %s')
            params.append(field.get_db_prep_save(value, connection))
    guard = "id = %s AND status = ANY(%s)"
    params += [Job._meta.pk.get_db_prep_value(job_id, connection), sources_for(to, from_statuses)]
    if on_attempt is not None:
        guard += " AND attempt = %s"
        params.append(on_attempt)
    sql = f"UPDATE jobqueue_job SET {', '.join(assignments)} WHERE {guard} RETURNING *"
    updated = list(Job.objects.raw(sql, params))
    return updated[0] if updated else None
