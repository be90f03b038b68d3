"""Builders for test data that read like prose."""

from __future__ import annotations

import uuid

from django.conf import settings

from gpu_worker import protocol
from jobqueue.models import Job
from jobqueue.submission import JobRequest, submit_job
from machines.models import Worker


def make_worker(
    *,
    pool: str = "standard",
    job_types: tuple[str, ...] = ("simulation",),
    capabilities: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    gpu_memory_gb: float = 24,
    slots: int = 1,
) -> Worker:
    """A registered, live worker row (no process behind it)."""
    worker_id = f"unit-{uuid.uuid4().hex[:8]}"
    return Worker.objects.create(
        id=worker_id,
        machine_id="unit-machine",
        instance_id=uuid.uuid4().hex,
        queue=protocol.worker_queue(worker_id),
        pool=pool,
        job_types=list(job_types),
        capabilities=sorted(capabilities),
        model_names=sorted(models),
        gpu_memory_gb=gpu_memory_gb,
        slots=slots,
    )


def make_job(
    *,
    type: str = "simulation",
    priority: int = 50,
    capabilities: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    gpu_memory_gb: float | None = None,
    pool: str | None = None,
    workflow_priority: int | None = None,
    workflow_datetime=None,
    payload: dict | None = None,
    max_retries: int = 3,
) -> Job:
    request = JobRequest(
        type=type,
        payload=payload or {},
        priority=priority,
        requirements={},
        required_capabilities=list(capabilities),
        required_models=list(models),
        required_gpu_memory_gb=gpu_memory_gb,
        required_pool=pool,
        max_retries=max_retries,
        timeout_seconds=settings.JOB_DEFAULT_TIMEOUT_SECONDS,
        workflow_priority=workflow_priority,
        workflow_datetime=workflow_datetime,
    )
    job, _ = submit_job(request, api_key=None)
    return job
