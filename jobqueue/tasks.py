"""Control-plane Celery tasks: thin wrappers that apply worker reports and run beat sweeps.

Report tasks are idempotent (compare-and-set on job id + attempt), so a redelivered message is safe.
While Postgres is unreachable they retry with backoff instead of failing: a failed task's message is
acknowledged and gone, and a report must never be lost (the worker that sent it has moved on).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

DATABASE_UNREACHABLE = (OperationalError, InterfaceError)

logger = logging.getLogger(__name__)

from gpu_worker import protocol
from jobqueue import broker, reports, schedules, sweeps


def durable_task(name: str):
    """A task applying a worker's message; retried for as long as the database is unreachable."""
    return shared_task(
        name=name,
        autoretry_for=DATABASE_UNREACHABLE,
        max_retries=None,
        retry_backoff=1,
        retry_backoff_max=settings.REPORT_RETRY_BACKOFF_MAX_SECONDS,
        retry_jitter=True,
    )


@durable_task(name=protocol.REPORT_STARTED_TASK)
def report_started(job_id: str, attempt: int, worker_id: str, running_for_ms: int = 0) -> bool:
    return reports.job_started(job_id, attempt, worker_id, running_for_ms)


@durable_task(name=protocol.REPORT_PROGRESS_TASK)
def report_progress(job_id: str, attempt: int, progress: int, stage: str = "") -> bool:
    return reports.job_progress(job_id, attempt, progress, stage)


@durable_task(name=protocol.REPORT_SUCCEEDED_TASK)
def report_succeeded(job_id: str, attempt: int, result: Any, runtime_ms: int | None = None) -> bool:
    applied = reports.job_succeeded(job_id, attempt, result, runtime_ms)
    _confirm(job_id, attempt)
    return applied


@durable_task(name=protocol.REPORT_FAILED_TASK)
def report_failed(job_id: str, attempt: int, error: dict[str, Any], runtime_ms: int | None = None) -> bool:
    applied = reports.job_failed(job_id, attempt, error, runtime_ms=runtime_ms)
    _confirm(job_id, attempt)
    return applied


@durable_task(name=protocol.REPORT_CANCELLED_TASK)
def report_cancelled(job_id: str, attempt: int, runtime_ms: int | None = None) -> bool:
    applied = reports.job_cancelled(job_id, attempt, runtime_ms)
    _confirm(job_id, attempt)
    return applied


@durable_task(name=protocol.REPORT_HANDED_BACK_TASK)
def report_handed_back(job_id: str, attempt: int, runtime_ms: int | None = None) -> bool:
    applied = reports.job_handed_back(job_id, attempt, runtime_ms)
    _confirm(job_id, attempt)
    return applied


def _confirm(job_id: str, attempt: int) -> None:
    """A final report was applied (or found already applied or stale): its worker may forget it.
    Unconfirmed reports are re-sent, so a report lost with a broker that restarted empty arrives."""
    try:
        broker.confirm_final_report(job_id, attempt)
    except redis.RedisError:
        logger.warning("could not confirm the final report of job %s attempt %s", job_id, attempt)


@shared_task(name="jobqueue.release_scheduled_jobs")
def release_scheduled_jobs() -> int:
    return sweeps.release_scheduled_jobs()


@shared_task(name="jobqueue.dispatch_sweep")
def dispatch_sweep() -> int:
    return sweeps.dispatch_sweep()


@shared_task(name="jobqueue.recover_lost_jobs")
def recover_lost_jobs() -> int:
    return sweeps.recover_lost_jobs()


@shared_task(name="jobqueue.fail_timed_out_jobs")
def fail_timed_out_jobs() -> int:
    return sweeps.fail_timed_out_jobs()


@shared_task(name="jobqueue.run_due_schedules")
def run_due_schedules() -> int:
    return schedules.run_due_schedules()


@shared_task(name="jobqueue.prune_events")
def prune_events() -> int:
    return sweeps.prune_events()
