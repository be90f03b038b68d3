"""Hooks for apps built on jobs (workflows), called inside the transaction of the change.

`jobqueue` knows nothing of workflows; the workflows app registers a listener when Django starts.
Listeners run in the caller's transaction, so what they write commits or rolls back with the job's
change. Lock order: they may lock other jobs' rows and then their own rows, never a worker row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobqueue.models import Job
    from jobqueue.submission import JobRequest


class JobListener(Protocol):
    def job_submitted(self, job: Job, request: JobRequest) -> None:
        """A job was created (may raise a JobError to refuse it; nothing is then created)."""

    def job_started(self, job: Job) -> None:
        """A job's worker reported that it started."""

    def job_finished(self, job: Job) -> None:
        """A job reached a terminal state (completed, failed or cancelled)."""

    def before_requeue(self, job: Job) -> None:
        """An operator asks to requeue a dead-lettered job (may raise a JobError to refuse)."""


_listeners: list[JobListener] = []


def register(listener: JobListener) -> None:
    if listener not in _listeners:
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
