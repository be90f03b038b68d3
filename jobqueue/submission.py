"""Creating jobs: one row and its `job_submitted` event in one transaction, dispatched on commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from jobqueue import lifecycle
from jobqueue.dispatch import dispatch_on_commit
from jobqueue.events import EventType, record_job_event
from jobqueue.idempotency import create_once
from jobqueue.models import ApiKey, Job, JobStatus


@dataclass
class JobRequest:
    """A validated submission, already translated from whichever client dialect sent it."""

    type: str
    payload: dict[str, Any]
    priority: int
    requirements: dict[str, Any]
    required_capabilities: list[str]
    required_models: list[str]
    required_gpu_memory_gb: float | None
    required_pool: str | None
    max_retries: int
    timeout_seconds: int
    scheduled_at: datetime | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    customer_id: str | None = None
    ctx: dict[str, Any] | None = None
    workflow_id: str | None = None
    workflow_priority: int | None = None
    workflow_datetime: datetime | None = None
    current_step: int | None = None
    total_steps: int | None = None
    # Created by the workflow engine as a step: it starts `waiting` when it has dependencies.
    workflow_step: bool = False
    waiting: bool = False


def submit_job(request: JobRequest, api_key: ApiKey | None, correlation_id: str = "") -> tuple[Job, bool]:
    """Create the job, or return the one already created with the same idempotency key.

    Returns (job, created).
    """
    return create_once(
        Job, api_key, request.idempotency_key, lambda: _create(request, api_key, correlation_id)
    )


def create_job(request: JobRequest, api_key: ApiKey | None, correlation_id: str = "") -> Job:
    """Create one job inside the caller's transaction (no idempotency check): for the workflow engine."""
    return _create(request, api_key, correlation_id)


def _create(request: JobRequest, api_key: ApiKey | None, correlation_id: str) -> Job:
    now = timezone.now()
    held = request.scheduled_at is not None and request.scheduled_at > now
    job = Job.objects.create(
        type=request.type,
        status=JobStatus.WAITING if request.waiting else JobStatus.SCHEDULED if held else JobStatus.PENDING,
        priority=request.priority,
        payload=request.payload,
        ctx=request.ctx,
        requirements=request.requirements,
        required_capabilities=sorted(set(request.required_capabilities)),
        required_models=sorted(set(request.required_models)),
        required_gpu_memory_gb=request.required_gpu_memory_gb,
        required_pool=request.required_pool,
        max_retries=request.max_retries,
        timeout_seconds=request.timeout_seconds,
        scheduled_at=request.scheduled_at,
        webhook_url=request.webhook_url,
        metadata=request.metadata,
        api_key=api_key,
        created_by=api_key.name if api_key else "",
        customer_id=request.customer_id,
        requires_dedicated_worker=request.requirements.get("customer_isolation") == "strict",
        idempotency_key=request.idempotency_key,
        correlation_id=correlation_id,
        workflow_id=request.workflow_id,
        workflow_priority=request.workflow_priority,
        workflow_datetime=request.workflow_datetime,
        current_step=request.current_step,
        total_steps=request.total_steps,
        # Steps of a client-driven workflow carry its priority and original time, so older
        # workflows finish before newer ones at the same priority.
        effective_priority=request.workflow_priority
        if request.workflow_priority is not None
        else request.priority,
        order_time=request.workflow_datetime or now,
        created_at=now,
        updated_at=now,
        queued_at=None if held or request.waiting else now,
    )
    record_job_event(
        EventType.JOB_SUBMITTED,
        job,
        {"type": job.type, "priority": job.priority, "scheduled_at": _iso(job.scheduled_at)},
    )
    lifecycle.job_submitted(job, request)
    if not held and not request.waiting:
        # After commit, each candidate worker in a transaction of its own: a transaction that held
        # more than one worker's lock could deadlock with another doing the same in another order.
        dispatch_on_commit([job.pk])
    return job


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
