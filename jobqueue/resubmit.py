"""Operator retry of a finished job: a fresh copy, so the original keeps its one terminal state."""

from __future__ import annotations

from jobqueue.models import ApiKey, Job
from jobqueue.submission import JobRequest, submit_job


def resubmit_copy(job: Job, api_key: ApiKey | None = None) -> Job:
    request = JobRequest(
        type=job.type,
        payload=job.payload,
        priority=job.priority,
        requirements=job.requirements,
        required_capabilities=job.required_capabilities,
        required_models=job.required_models,
        required_gpu_memory_gb=job.required_gpu_memory_gb,
        required_pool=job.required_pool,
        max_retries=job.max_retries,
        timeout_seconds=job.timeout_seconds,
        webhook_url=job.webhook_url,
        metadata={**job.metadata, "retry_of": str(job.id)},
        customer_id=job.customer_id,
        ctx=job.ctx,
        workflow_id=job.workflow_id,
        workflow_priority=job.workflow_priority,
        workflow_datetime=job.workflow_datetime,
        current_step=job.current_step,
        total_steps=job.total_steps,
    )
    copy, _ = submit_job(request, api_key or job.api_key, correlation_id=job.correlation_id)
    return copy
