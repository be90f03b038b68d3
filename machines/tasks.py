"""Control-plane tasks receiving GPU workers' registration and heartbeats."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from gpu_worker import protocol
from machines import services


@shared_task(name=protocol.REGISTER_WORKER_TASK)
def register_worker(info: dict[str, Any]) -> None:
    services.register_worker(info)


@shared_task(name=protocol.HEARTBEAT_TASK)
def worker_heartbeat(worker_id: str, instance_id: str, info: dict[str, Any] | None = None) -> bool:
    return services.heartbeat(worker_id, instance_id, info)


@shared_task(name=protocol.DEREGISTER_WORKER_TASK)
def deregister_worker(worker_id: str, instance_id: str) -> None:
    services.deregister_worker(worker_id, instance_id)
