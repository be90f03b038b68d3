"""Builders for test data that read like prose."""

from __future__ import annotations

import uuid

from django.conf import settings

from core.batch_consumer import TaskMessage
from jobqueue.models import Job, JobExecution
from jobqueue.submission import JobRequest, submit_job
from machines.models import Worker, WorkerCredential
from wire import names


def make_worker(
    *,
    pool: str = "standard",
    job_types: tuple[str, ...] = ("simulation",),
    capabilities: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    gpu_memory_gb: float = 24,
    slots: int = 1,
) -> Worker:
    """A registered, live worker row with an active credential (no process behind it)."""
    worker_id = f"unit-{uuid.uuid4().hex[:8]}"
    WorkerCredential.objects.create(worker_id=worker_id, pool=pool, secret_hash=uuid.uuid4().hex)
    return Worker.objects.create(
        id=worker_id,
        machine_id="unit-machine",
        instance_id=uuid.uuid4().hex,
        queue=names.worker_queue(worker_id),
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


def worker_key(worker_id: str, pool: str = "standard", customers: tuple[str, ...] = ()) -> str:
    """The worker's key: a credential made for it as joining makes one (an earlier one replaced)."""
    from machines import credentials
    from machines.models import WorkerCredential

    WorkerCredential.objects.filter(pk=worker_id).delete()
    return credentials.issue(worker_id, pool, customers)[1]


def fleet_message(task: str, *args: object, key: str | None) -> TaskMessage:
    """A registration, heartbeat or deregistration as a worker holding `key` sends it."""
    return TaskMessage(task, args, {names.WORKER_KEY_ARG: key})


def lease_of(job: Job, attempt: int | None = None) -> str:
    """The lease token its worker received with the attempt (the current one by default)."""
    job.refresh_from_db()
    execution = JobExecution.objects.get(job_id=job.pk, attempt=job.attempt if attempt is None else attempt)
    return str(execution.lease_token)


def report(
    task: str, job: Job, *rest: object, attempt: int | None = None, lease: str | None = None
) -> TaskMessage:
    """A report about the job's attempt (the current one by default) carrying its lease token, as
    the worker given the attempt sends it (or `lease`, as someone else would)."""
    job.refresh_from_db()
    attempt = job.attempt if attempt is None else attempt
    if lease is None:
        lease = (
            lease_of(job, attempt)
            if JobExecution.objects.filter(job_id=job.pk, attempt=attempt).exists()
            else ""
        )
    return TaskMessage(task, (str(job.pk), attempt, *rest), {names.LEASE_ARG: lease})
