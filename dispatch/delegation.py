"""Delegated jobs: a job type no worker runs, completed by an authorised external client, as the
replaced system allowed. The client takes the job as an attempt of its own and reports its outcome
in one transaction, so the job's history reads like any other."""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from accounts.models import ApiKey
from accounts.scoping import owned
from core.errors import DomainError
from dispatch import reports
from events.types import EventType
from jobqueue.errors import JobAlreadyFinished, JobConflict, JobNotFound
from jobqueue.models import TERMINAL_STATUSES, ExecutionOutcome, Job, JobExecution, JobKey, JobStatus
from jobqueue.transitions import transition
from machines.models import Worker
from wire.json_types import JsonObject, JsonValue

DELEGATED_QUEUE = "delegated"


class NotAllowedToComplete(DomainError):
    """This API key may not complete jobs (ask an operator for a delegate key)."""

    code = "not_allowed"
    http_status = 403


def complete_delegated(
    job_id: JobKey, api_key: ApiKey, *, result: JsonValue = None, error: JsonObject | None = None
) -> Job:
    """Finish a pending job with `result`, or fail it with `error` ({code, message, class})."""
    if not api_key.can_complete_delegated:
        raise NotAllowedToComplete()
    with transaction.atomic():
        job = owned(Job.objects.select_for_update(), api_key).filter(pk=job_id).first()
        if job is None:
            raise JobNotFound()  # or another tenant's, whatever the delegate's role
        if job.status in TERMINAL_STATUSES:
            raise JobAlreadyFinished(status=job.status)
        if job.status != JobStatus.PENDING:
            raise JobConflict(
                f"the job is {job.status}; only a pending job can be completed", code="job_not_pending"
            )
        if Worker.objects.live().filter(job_types__contains=[job.type]).exists():
            raise JobConflict(
                f"live workers run {job.type!r} jobs; it is theirs to run", code="job_runs_on_workers"
            )
        attempt = job.attempt + 1
        delegate = f"delegate:{api_key.name}"
        JobExecution.objects.create(
            job=job, attempt=attempt, worker_id=delegate, outcome=ExecutionOutcome.ASSIGNED
        )
        transition(
            job.pk,
            from_statuses={JobStatus.PENDING},
            to=JobStatus.ASSIGNED,
            on_attempt=job.attempt,
            attempt=attempt,
            worker_id=delegate,
            assigned_at=Now(),
            event=EventType.JOB_ASSIGNED,
            event_payload={"queue": DELEGATED_QUEUE},
        )
        if error is None:
            reports.report_succeeded(job.pk, attempt, result)
        else:
            reports.report_failed(job.pk, attempt, {"class": "permanent", **error})
    return Job.objects.get(pk=job.pk)
