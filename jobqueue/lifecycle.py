"""Hooks for apps built on jobs, called inside the transaction of the change.

`jobqueue` knows nothing of the apps above it: the workflow engine and the dispatcher each register a
listener when Django starts (their `AppConfig.ready`). Listeners run in the caller's transaction, so
what they write commits or rolls back with the job's change; work for after the commit they defer
with `transaction.on_commit`. Lock order: they may lock other jobs' rows and then their own rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from jobqueue.job_request import JobRequest
from jobqueue.models import Job, JobKey


class JobListener:
    """Override what you listen for; every hook does nothing by default."""

    def job_submitted(self, job: Job, request: JobRequest) -> None:
        """A job was created (may raise a DomainError to refuse it; nothing is then created)."""

    def job_started(self, job: Job) -> None:
        """A job's worker reported that it started."""

    def job_finished(self, job: Job) -> None:
        """A job reached a terminal state (completed, failed or cancelled)."""

    def before_requeue(self, job: Job) -> None:
        """An operator asks to requeue a dead-lettered job (may raise a DomainError to refuse)."""

    def held_back(self, job_ids: Sequence[JobKey]) -> set[JobKey]:
        """Of these waiting jobs whose dependencies all completed, those that must stay waiting (to be
        cancelled)."""
        return set()

    def jobs_pending(self, job_ids: list[JobKey]) -> None:
        """These jobs became pending: a worker may take them once the transaction commits."""

    def cancel_requested(self, job_id: JobKey, attempt: int) -> None:
        """A running attempt was asked to stop (stored on the job; its worker must be told)."""


_listeners: list[JobListener] = []
# While a batch is open, jobs that become pending are collected and announced once, at its end.
_batch: ContextVar[list[JobKey] | None] = ContextVar("pending_batch", default=None)


def register(listener: JobListener) -> None:
    if all(type(registered) is not type(listener) for registered in _listeners):
        _listeners.append(listener)


def job_submitted(job: Job, request: JobRequest) -> None:
    for listener in _listeners:
        listener.job_submitted(job, request)


def job_started(job: Job) -> None:
    for listener in _listeners:
        listener.job_started(job)


def job_finished(job: Job) -> None:
    for listener in _listeners:
        listener.job_finished(job)


def before_requeue(job: Job) -> None:
    for listener in _listeners:
        listener.before_requeue(job)


def held_back(job_ids: Sequence[JobKey]) -> set[JobKey]:
    return set().union(*(listener.held_back(job_ids) for listener in _listeners))


def jobs_pending(job_ids: Iterable[JobKey]) -> None:
    ids = list(job_ids)
    batch = _batch.get()
    if batch is not None:
        batch.extend(ids)
        return
    if ids:
        for listener in _listeners:
            listener.jobs_pending(ids)


@contextmanager
def pending_in_one_batch() -> Iterator[None]:
    """Announce the jobs that become pending inside the block once, when it ends without an error
    (a bulk submit is then one dispatch, not one per job). Use inside the block's transaction."""
    collected: list[JobKey] = []
    token = _batch.set(collected)
    try:
        yield
    finally:
        _batch.reset(token)
    jobs_pending(collected)


def cancel_requested(job_id: JobKey, attempt: int) -> None:
    for listener in _listeners:
        listener.cancel_requested(job_id, attempt)
