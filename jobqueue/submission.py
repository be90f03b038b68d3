"""Creating jobs: one row and its `job_submitted` event in one transaction, offered to workers on commit."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import customers
from accounts.models import ApiKey, Tenant
from core.db import insert_many
from core.errors import DomainError
from events.models import Event
from events.recording import job_event, record_job_event
from events.types import EventType
from jobqueue import dependencies, lifecycle, running_counts
from jobqueue.errors import JobIdTaken
from jobqueue.idempotency import create_once
from jobqueue.job_request import STORED_AS_IS, JobRequest
from jobqueue.models import Job, JobStatus
from wire.json_types import JsonObject


class DependsOnInBatch(DomainError):
    """depends_on is for single submits; a batch's jobs are independent (or submit a workflow)."""

    code = "depends_on_in_batch"


def submit_job(request: JobRequest, api_key: ApiKey | None, correlation_id: str = "") -> tuple[Job, bool]:
    """Create the job, or return the one already created with the same idempotency key.

    Returns (job, created).
    """
    return create_once(
        Job,
        _owner(request, api_key),
        request.idempotency_key,
        lambda: _create(request, api_key, correlation_id),
    )


def submit_jobs(
    requests: list[JobRequest], api_key: ApiKey | None, correlation_id: str = ""
) -> list[tuple[Job, bool]]:
    """Submit many jobs in one transaction, offered to workers in one dispatch after commit. Each keeps
    `submit_job`'s idempotency (a repeated key, even within the batch, returns the first job).

    The jobs and their events are inserted a statement each (`insert_many`); if a concurrent request took one of the
    batch's idempotency keys meanwhile (the unique constraint), the batch is submitted job by job."""
    with transaction.atomic(), lifecycle.pending_in_one_batch():
        try:
            with transaction.atomic():
                return _create_many(requests, api_key, correlation_id)
        except IntegrityError:
            return [submit_job(request, api_key, correlation_id) for request in requests]


def create_job(request: JobRequest, api_key: ApiKey | None, correlation_id: str = "") -> Job:
    """Create one job inside the caller's transaction (no idempotency check): for the workflow engine."""
    return _create(request, api_key, correlation_id)


def _create(request: JobRequest, api_key: ApiKey | None, correlation_id: str) -> Job:
    if request.job_id is not None:
        holder = Job.objects.filter(pk=request.job_id).values_list("tenant_id", flat=True).first()
        if holder == _owner(request, api_key):
            raise JobIdTaken(field="job_id", job_id=str(request.job_id))
        if holder is not None:
            # Ids a client chooses are each tenant's own: another tenant's job with this id neither
            # blocks this one nor is told of; this job gets an id of its own.
            request.job_id = None
    if request.depends_on:
        request.waiting, inputs = dependencies.prepare(request.depends_on, _owner(request, api_key))
    job = _new_job(request, api_key, correlation_id, timezone.now())
    if request.depends_on and not request.waiting:
        job.inputs = inputs  # every job it names had completed already
    customers.record(job.tenant_id, [job.customer_id])
    job.save(force_insert=True)
    running_counts.make_places([job])
    if request.depends_on:
        dependencies.link(dependencies.of_depends_on(job.pk, request.depends_on))
    record_job_event(EventType.JOB_SUBMITTED, job, _submitted_payload(job))
    _announce([(job, request)])
    return job


def _create_many(
    requests: list[JobRequest], api_key: ApiKey | None, correlation_id: str
) -> list[tuple[Job, bool]]:
    if any(request.depends_on for request in requests):
        raise DependsOnInBatch(field="jobs")
    tenant_id = Tenant.id_of(api_key)  # a batch is one key's: its requests name no other owner
    keys = {r.idempotency_key for r in requests if r.idempotency_key}
    by_key = {
        job.idempotency_key: job for job in Job.objects.filter(tenant_id=tenant_id, idempotency_key__in=keys)
    }
    now = timezone.now()
    key_limits: dict[int, JsonObject] = {}  # read once for the batch, not once per job
    results: list[tuple[Job, bool]] = []
    created: list[tuple[Job, JobRequest]] = []
    for request in requests:
        existing = by_key.get(request.idempotency_key) if request.idempotency_key else None
        if existing is not None:
            results.append((existing, False))
            continue
        job = _new_job(request, api_key, correlation_id, now, key_limits)
        if request.idempotency_key:
            by_key[request.idempotency_key] = job
        created.append((job, request))
        results.append((job, True))
    customers.record(tenant_id, {job.customer_id for job, _ in created})
    insert_many(Job, [job for job, _ in created])
    running_counts.make_places(job for job, _ in created)
    insert_many(
        Event, [job_event(EventType.JOB_SUBMITTED, job, _submitted_payload(job)) for job, _ in created]
    )
    _announce(created)
    return results


def _new_job(
    request: JobRequest,
    api_key: ApiKey | None,
    correlation_id: str,
    now: datetime,
    key_limits: dict[int, JsonObject] | None = None,
) -> Job:
    held = request.scheduled_at is not None and request.scheduled_at > now
    stored = {name: getattr(request, name) for name in STORED_AS_IS}
    stored["tenant_id"] = _owner(request, api_key)
    if request.concurrency_key and request.concurrency_limit is None:
        stored["concurrency_limit"] = _tenant_limit_of(
            stored["tenant_id"], request.concurrency_key, {} if key_limits is None else key_limits
        )
    stored.update(  # sets, kept sorted so equal requirements compare equal
        required_capabilities=sorted(set(request.required_capabilities)),
        required_models=sorted(set(request.required_models)),
    )
    return Job(
        **stored,
        **({"id": request.job_id} if request.job_id is not None else {}),
        status=JobStatus.WAITING if request.waiting else JobStatus.SCHEDULED if held else JobStatus.PENDING,
        api_key=api_key,
        created_by=api_key.name if api_key else "",
        requires_dedicated_worker=request.requirements.get("customer_isolation") == "strict",
        correlation_id=correlation_id,
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


def _owner(request: JobRequest, api_key: ApiKey | None) -> int:
    """The tenant the job will belong to: the one the request names, or the key's (settled on the
    request, so its idempotency check and its row agree)."""
    if request.tenant_id is None:
        request.tenant_id = Tenant.id_of(api_key)
    return request.tenant_id


def _tenant_limit_of(tenant_id: int, concurrency_key: str, known: dict[int, JsonObject]) -> int | None:
    """The tenant's limit for jobs of `concurrency_key` that name none of their own (none: no limit);
    each tenant's limits are read once into `known` (a batch's jobs share it)."""
    if tenant_id not in known:
        row = Tenant.objects.filter(pk=tenant_id).values_list("concurrency_limits", flat=True).first()
        known[tenant_id] = row or {}
    limit = known[tenant_id].get(concurrency_key)
    return limit if isinstance(limit, int) and limit >= 1 else None


def _submitted_payload(job: Job) -> JsonObject:
    return {"type": job.type, "priority": job.priority, "scheduled_at": _iso(job.scheduled_at)}


def _announce(created: list[tuple[Job, JobRequest]]) -> None:
    """Apps built on jobs hear of each new job; the pending ones are offered to workers."""
    for job, request in created:
        lifecycle.job_submitted(job, request)
    lifecycle.jobs_pending([job.pk for job, _ in created if job.status == JobStatus.PENDING])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
