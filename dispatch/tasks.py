"""Control-plane Celery tasks: beat's sweeps, and GPU workers' messages one at a time.

The report and fleet lanes are consumed by `manage.py consume_lanes`, which applies their messages
in batches (`dispatch/lane_batches.py`); these tasks apply the same messages through the same code
for a Celery worker that consumes a lane. Reports are idempotent (compare-and-set on job id +
attempt), so a redelivered message is safe; while Postgres is unreachable they retry with backoff
(`core.tasks.durable_task`). Task names are the wire contract (`gpu_worker.protocol`) and beat's
schedule; they outlive modules.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from core.batch_consumer import TaskMessage
from core.tasks import DATABASE_UNREACHABLE, durable_task
from dispatch import lane_batches, leases, recovery
from gpu_worker import protocol

logger = logging.getLogger(__name__)


def _one_message_task(name: str) -> Any:
    """The lane message `name` as a Celery task of its own: for a Celery worker consuming a lane
    (`consume_lanes` applies the same messages in batches, through the same code)."""

    def apply(*args: Any, **kwargs: Any) -> None:
        lane_batches.apply_batch([TaskMessage(name, args, kwargs)])

    apply.__name__ = apply.__qualname__ = name.rpartition(".")[2]
    return durable_task(name=name)(apply)


report_started = _one_message_task(protocol.REPORT_STARTED_TASK)
report_progress = _one_message_task(protocol.REPORT_PROGRESS_TASK)
report_succeeded = _one_message_task(protocol.REPORT_SUCCEEDED_TASK)
report_failed = _one_message_task(protocol.REPORT_FAILED_TASK)
report_cancelled = _one_message_task(protocol.REPORT_CANCELLED_TASK)
report_handed_back = _one_message_task(protocol.REPORT_HANDED_BACK_TASK)
register_worker = _one_message_task(protocol.REGISTER_WORKER_TASK)
deregister_worker = _one_message_task(protocol.DEREGISTER_WORKER_TASK)


@shared_task(name=protocol.HEARTBEAT_TASK)
def worker_heartbeat(*args: Any, **kwargs: Any) -> None:
    try:
        lane_batches.apply_batch([TaskMessage(protocol.HEARTBEAT_TASK, args, kwargs)])
    except DATABASE_UNREACHABLE as exc:
        # Not retried: the next heartbeat, seconds away, says the same thing more recently.
        logger.warning("a heartbeat was dropped, database unreachable: %s", exc)


@shared_task(name="jobqueue.dispatch_sweep")
def dispatch_sweep() -> int:
    return recovery.dispatch_sweep()


@shared_task(name="jobqueue.recover_lost_jobs")
def recover_lost_jobs() -> int:
    return leases.expire_leases()


@shared_task(name="jobqueue.fail_timed_out_jobs")
def fail_timed_out_jobs() -> int:
    return leases.fail_timed_out_jobs()
