"""Control-plane tasks receiving GPU workers' registration and heartbeats."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from gpu_worker import protocol
from jobqueue.tasks import DATABASE_UNREACHABLE, durable_task
from machines import services

logger = logging.getLogger(__name__)


@durable_task(name=protocol.REGISTER_WORKER_TASK)
def register_worker(info: dict[str, Any]) -> None:
    services.register_worker(info)


@shared_task(name=protocol.HEARTBEAT_TASK)
def worker_heartbeat(worker_id: str, instance_id: str, info: dict[str, Any] | None = None) -> bool:
    try:
        return services.heartbeat(worker_id, instance_id, info)
    except DATABASE_UNREACHABLE as exc:
        # Not retried: the next heartbeat, seconds away, says the same thing more recently.
        logger.warning("heartbeat of %s dropped, database unreachable: %s", worker_id, exc)
        return False


@durable_task(name=protocol.DEREGISTER_WORKER_TASK)
def deregister_worker(worker_id: str, instance_id: str) -> None:
    services.deregister_worker(worker_id, instance_id)
