"""Control-plane Celery tasks: thin wrappers that apply GPU workers' messages and run beat's sweeps.

Report tasks are idempotent (compare-and-set on job id + attempt), so a redelivered message is safe.
While Postgres is unreachable they retry with backoff instead of failing (`core.tasks.durable_task`).
Task names are the wire contract (`gpu_worker.protocol`) and beat's schedule; they outlive modules.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import shared_task

from core.tasks import DATABASE_UNREACHABLE, durable_task
from dispatch import cancel_flags, leases, recovery, reports, worker_reports
from gpu_worker import protocol
from machines import registry

logger = logging.getLogger(__name__)


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
        cancel_flags.confirm_final_report(job_id, attempt)
    except redis.RedisError:
        logger.warning("could not confirm the final report of job %s attempt %s", job_id, attempt)


@durable_task(name=protocol.REGISTER_WORKER_TASK)
def register_worker(info: dict[str, Any]) -> None:
    worker_reports.register_worker(info)


@shared_task(name=protocol.HEARTBEAT_TASK)
def worker_heartbeat(worker_id: str, instance_id: str, info: dict[str, Any] | None = None) -> bool:
    try:
        return worker_reports.heartbeat(worker_id, instance_id, info)
    except DATABASE_UNREACHABLE as exc:
        # Not retried: the next heartbeat, seconds away, says the same thing more recently.
        logger.warning("heartbeat of %s dropped, database unreachable: %s", worker_id, exc)
        return False


@durable_task(name=protocol.DEREGISTER_WORKER_TASK)
def deregister_worker(worker_id: str, instance_id: str) -> None:
    registry.deregister_worker(worker_id, instance_id)


@shared_task(name="jobqueue.dispatch_sweep")
def dispatch_sweep() -> int:
    return recovery.dispatch_sweep()


@shared_task(name="jobqueue.recover_lost_jobs")
def recover_lost_jobs() -> int:
    return leases.expire_leases()


@shared_task(name="jobqueue.fail_timed_out_jobs")
def fail_timed_out_jobs() -> int:
    return leases.fail_timed_out_jobs()
