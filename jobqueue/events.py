"""Writing the event log. Call inside the transaction of the change the event describes."""

from __future__ import annotations

from typing import Any

from django.db import models

from jobqueue.models import Event, Job


class EventType(models.TextChoices):
    JOB_SUBMITTED = "job_submitted"
    JOB_QUEUED = "job_queued"
    JOB_ASSIGNED = "job_assigned"
    JOB_STARTED = "job_started"
    JOB_PROGRESS = "job_progress"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCEL_REQUESTED = "job_cancel_requested"
    JOB_CANCELLED = "job_cancelled"
    JOB_RETRY_SCHEDULED = "job_retry_scheduled"
    JOB_DEAD_LETTERED = "job_dead_lettered"
    JOB_REQUEUED = "job_requeued"
    DEAD_LETTER_DISCARDED = "dead_letter_discarded"
    WORKFLOW_CREATED = "workflow_created"
    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_STEP_COMPLETED = "workflow_step_completed"
    WORKFLOW_STEP_FAILED = "workflow_step_failed"
    WORKFLOW_CANCEL_REQUESTED = "workflow_cancel_requested"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELLED = "workflow_cancelled"
    MACHINE_REGISTERED = "machine_registered"
    MACHINE_STATUS_CHANGED = "machine_status_changed"
    WORKER_REGISTERED = "worker_registered"
    WORKER_STATUS_CHANGED = "worker_status_changed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"


def record_job_event(event_type: EventType, job: Job, payload: dict[str, Any] | None = None) -> Event:
    """Append an event about `job`; ids and correlation id come from the job itself.

    Transitions write their events in the same SQL statement instead (`transitions.transition`)."""
    payload = {"status": job.status, "attempt": job.attempt, **(payload or {})}
    _validate(event_type, payload)
    return Event.objects.create(
        type=event_type,
        job_id=job.id,
        workflow_id=job.workflow_id,
        worker_id=job.worker_id,
        machine_id=job.machine_id,
        correlation_id=job.correlation_id,
        payload=payload,
    )


def record_worker_event(
    event_type: EventType, worker_id: str, machine_id: str, payload: dict[str, Any]
) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, worker_id=worker_id, machine_id=machine_id, payload=payload)


def record_workflow_event(
    event_type: EventType, workflow_id: str, correlation_id: str, payload: dict[str, Any]
) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(
        type=event_type, workflow_id=workflow_id, correlation_id=correlation_id, payload=payload
    )


def record_machine_event(event_type: EventType, machine_id: str, payload: dict[str, Any]) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, machine_id=machine_id, payload=payload)


def record_webhook_event(event_type: EventType, payload: dict[str, Any]) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, payload=payload)


def _validate(event_type: str, payload: dict[str, Any]) -> None:
    from jobqueue.event_schemas import validate_event  # it imports EventType from here

    validate_event(event_type, payload)
