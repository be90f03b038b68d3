"""Writing the event log. Call inside the transaction of the change the event describes."""

from __future__ import annotations

import uuid
from typing import Protocol

from events.models import Event
from events.schemas import validate_event
from events.types import EventType
from wire.json_types import JsonObject


class JobLike(Protocol):
    """What an event about a job takes from it (the event log knows no job model)."""

    id: uuid.UUID
    status: str
    attempt: int
    tenant_id: int
    workflow_id: str | None
    worker_id: str | None
    machine_id: str | None
    correlation_id: str


_EVENT_TABLE = Event._meta.db_table


def job_events_sql(source: str, event_type: str, payload: str) -> str:
    """An INSERT of one event per job row in `source` (a CTE of updated `jobqueue_job` rows), for
    statements that change jobs and log it in the same round trip. `event_type` and `payload` are SQL
    expressions (usually parameters); the payload always carries the job's status and attempt, like
    `record_job_event`'s."""
    return f"""
        INSERT INTO {_EVENT_TABLE}
            (type, version, created_at, tenant_id, job_id, workflow_id, machine_id, worker_id, correlation_id,
             payload)
        SELECT {event_type}, 1, clock_timestamp(), tenant_id, id, workflow_id, machine_id, worker_id,
               correlation_id, jsonb_build_object('status', status, 'attempt', attempt) || {payload}
        FROM {source}
    """


def record_job_event(event_type: EventType, job: JobLike, payload: JsonObject | None = None) -> Event:
    """Append an event about `job`; ids and correlation id come from the job itself.

    Transitions write their events in the same SQL statement instead (`job_events_sql`)."""
    event = job_event(event_type, job, payload)
    event.save(force_insert=True)
    return event


def job_event(event_type: EventType, job: JobLike, payload: JsonObject | None = None) -> Event:
    """The (unsaved, checked) event about `job`, for writers that insert many at once."""
    payload = {"status": job.status, "attempt": job.attempt, **(payload or {})}
    _validate(event_type, payload)
    return Event(
        type=event_type,
        tenant_id=job.tenant_id,
        job_id=job.id,
        workflow_id=job.workflow_id,
        worker_id=job.worker_id,
        machine_id=job.machine_id,
        correlation_id=job.correlation_id,
        payload=payload,
    )


def record_worker_event(event_type: EventType, worker_id: str, machine_id: str, payload: JsonObject) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, worker_id=worker_id, machine_id=machine_id, payload=payload)


def record_workflow_event(
    event_type: EventType, workflow_id: str, correlation_id: str, payload: JsonObject, *, tenant_id: int
) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(
        type=event_type,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        correlation_id=correlation_id,
        payload=payload,
    )


def record_machine_event(event_type: EventType, machine_id: str, payload: JsonObject) -> Event:
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, machine_id=machine_id, payload=payload)


def record_tenant_event(event_type: EventType, payload: JsonObject, *, tenant_id: int) -> Event:
    """An event about something of a tenant's (a webhook endpoint, a schedule): that tenant's to see."""
    _validate(event_type, payload)
    return Event.objects.create(type=event_type, tenant_id=tenant_id, payload=payload)


def _validate(event_type: str, payload: JsonObject) -> None:
    validate_event(event_type, payload)
