"""Builders for test data that read like prose."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from core.batch_consumer import Refusal
from jobqueue.job_request import JobRequest
from jobqueue.models import Job, JobExecution
from jobqueue.submission import submit_job
from machines.models import Worker, WorkerCredential
from tests.envelopes import envelope
from wire import edge, names


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
    tenant_id: int | None = None,
    concurrency_key: str = "",
    concurrency_limit: int | None = None,
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
        tenant_id=tenant_id,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
    )
    job, _ = submit_job(request, api_key=None)
    return job


def credential_for(
    worker_id: str, pool: str = "standard", customers: tuple[str, ...] = (), machine_id: str = ""
) -> None:
    """An active credential for the worker, as joining makes one (an earlier one replaced)."""
    from machines import credentials

    WorkerCredential.objects.filter(pk=worker_id).delete()
    credentials.issue(worker_id, pool, customers, machine_id)


def from_lane(sender: str, task: str, **fields: Any) -> edge.Decoded:
    """A message as the consumer hands it on after the edge: `sender` put it on its own lane."""
    lane = edge.KINDS[task][0]
    return edge.decode(envelope(task, fields), lane, sender)


def delivered(batch: Sequence[edge.Decoded]) -> None:
    """What the lane consumer does with a batch: the decoded messages applied, the rest counted
    against their senders; then what the sweeps worker does next: the offers the batch asked for."""
    from dispatch import offers, refusals
    from dispatch.lane_batches import apply_batch

    refused = [Refusal(d.lane, d.sender, d.refusal, detail=d.detail) for d in batch if d.refusal is not None]
    if refused:
        refusals.record(refused)
    apply_batch([d for d in batch if d.message is not None])
    offers.make_pending()


def lease_of(job: Job, attempt: int | None = None) -> str:
    """The lease token its worker received with the attempt (the current one by default)."""
    job.refresh_from_db()
    execution = JobExecution.objects.get(job_id=job.pk, attempt=job.attempt if attempt is None else attempt)
    return str(execution.lease_token)


def report(
    task: str,
    job: Job,
    *,
    attempt: int | None = None,
    lease: str | None = None,
    sender: str | None = None,
    **fields: Any,
) -> edge.Decoded:
    """A report about the job's attempt (the current one by default) carrying its lease token, as
    the worker given the attempt sends it (or `lease` / `sender`, as someone else would)."""
    job.refresh_from_db()
    attempt = job.attempt if attempt is None else attempt
    if lease is None:
        lease = (
            lease_of(job, attempt)
            if JobExecution.objects.filter(job_id=job.pk, attempt=attempt).exists()
            else ""
        )
    sender = sender or job.worker_id or "nobody"
    return from_lane(sender, task, job_id=str(job.pk), attempt=attempt, lease=lease, **fields)
