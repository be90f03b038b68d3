"""Operator retry of a finished job: a fresh copy, so the original keeps its one terminal state."""

from __future__ import annotations

from accounts.models import ApiKey
from jobqueue.job_request import JobRequest
from jobqueue.models import Job
from jobqueue.submission import submit_job


def resubmit_copy(job: Job, api_key: ApiKey | None = None) -> Job:
    request = JobRequest.from_job(
        job, idempotency_key=None, scheduled_at=None, metadata={**job.metadata, "retry_of": str(job.id)}
    )
    copy, _ = submit_job(request, api_key or job.api_key, correlation_id=job.correlation_id)
    return copy
