"""The job state machine, applied as compare-and-set updates.

Every change of `Job.status` goes through `transition()`: an `UPDATE ... WHERE status IN (...) AND
attempt = ...` that changes nothing when a duplicate or late report arrives, so terminal states are
never left and a stale attempt never writes.
"""

from __future__ import annotations

from typing import Any

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

    Returns the updated job, or None when the guard did not match (the report was late or a duplicate).
    """
    query = Job.objects.filter(pk=job_id, status__in=sources_for(to, from_statuses))
    if on_attempt is not None:
        query = query.filter(attempt=on_attempt)
    if query.update(status=to, updated_at=Now(), **changes) != 1:
        return None
    return Job.objects.get(pk=job_id)
