"""Turn committed events into deliveries: one per matching endpoint, plus a job's or workflow's own
`webhook_url` for its terminal events. A consumer of the event log with a cursor of its own; the
unique constraints make a second pass over the same event create nothing."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Q

from accounts.models import usable_key
from accounts.scoping import reads_every_tenant
from events.cursors import consume_events
from events.models import Event
from events.types import ENDINGS
from jobqueue.models import Job
from machines.models import Worker
from webhooks import emp_dialect
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookFormat
from webhooks.payloads import Subject, event_body
from wire.json_types import JsonObject
from workflows.lookup import of_pairs

CURSOR_NAME = "webhooks"
# Endpoint filter name -> the subject attribute it constrains.
FILTERS = {
    "job_types": "job_type",
    "priorities": "priority",
    "machine_ids": "machine_id",
    "worker_ids": "worker_id",
    "workflow_ids": "workflow_id",
}


def fan_out_once(batch: int | None = None) -> int:
    """Create the deliveries of the next committed events; returns how many events were read."""
    return consume_events(CURSOR_NAME, batch or settings.WEBHOOK_PUMP_BATCH, _create_deliveries)


def _create_deliveries(events: list[Event]) -> None:
    # An endpoint whose key was revoked, deactivated or has expired receives nothing meanwhile.
    endpoints = list(
        WebhookEndpoint.objects.filter(enabled=True)
        .filter(Q(owner=None) | usable_key("owner"))
        .select_related("owner")
    )
    subjects = _subjects(events)
    deliveries = []
    for event in events:
        deliveries += _deliveries_for(event, subjects[event.id], endpoints)
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)


def receives(endpoint: WebhookEndpoint, tenant_id: int | None) -> bool:
    """An endpoint receives its own tenant's events only; the fleet's own (no tenant) only if the key
    that made it may read them (an operator's)."""
    if tenant_id is None:
        return endpoint.owner is not None and reads_every_tenant(endpoint.owner)
    return tenant_id == endpoint.tenant_id


def matches(endpoint: WebhookEndpoint, event_type: str, attributes: JsonObject) -> bool:
    if endpoint.event_types and event_type not in endpoint.event_types:
        return False
    for name, attribute in FILTERS.items():
        allowed = endpoint.filters.get(name)
        if allowed and attributes.get(attribute) not in allowed:
            return False
    return True


def _deliveries_for(
    event: Event, subject: Subject, endpoints: list[WebhookEndpoint]
) -> list[WebhookDelivery]:
    targets: list[tuple[WebhookEndpoint | None, str, int, int | None]] = [
        (endpoint, endpoint.url, endpoint.tenant_id, endpoint.owner_id)
        for endpoint in endpoints
        if receives(endpoint, event.tenant_id) and matches(endpoint, event.type, subject.attributes)
    ]
    entity = subject.workflow if event.job_id is None else subject.job
    if event.type in ENDINGS and entity and entity.get("webhook_url"):
        targets.append((None, entity["webhook_url"], entity["tenant_id"], entity["api_key_id"]))
    if not targets:
        return []
    standard = event_body(event, subject)
    return [
        WebhookDelivery(
            endpoint=endpoint,
            url=url,
            tenant_id=tenant_id,
            owner_id=owner_id,
            event_id=event.id,
            event_type=event.type,
            message_id=f"msg_{event.id}",
            job_id=event.job_id,
            workflow_id=event.workflow_id or subject.attributes.get("workflow_id"),
            body=emp_dialect.body(event, subject, str(endpoint.pk))
            if endpoint is not None and endpoint.format == WebhookFormat.EMP
            else standard,
        )
        for endpoint, url, tenant_id, owner_id in targets
    ]


def _subjects(events: Iterable[Event]) -> dict[int, Subject]:
    """Each event's job, workflow and attributes, in three queries for the whole batch."""
    events = list(events)
    jobs = {
        row["id"]: row
        for row in Job.objects.filter(id__in={e.job_id for e in events if e.job_id}).values(
            "id",
            "type",
            "priority",
            "worker_id",
            "workflow_id",
            "tenant_id",
            "api_key_id",
            "webhook_url",
            "created_at",
            "started_at",
            "completed_at",
        )
    }
    names = {(e.tenant_id, e.workflow_id) for e in events if e.workflow_id} | {
        (j["tenant_id"], j["workflow_id"]) for j in jobs.values() if j["workflow_id"]
    }
    workflows = {
        (row["tenant_id"], row["workflow_id"]): row
        for row in of_pairs(names).values(
            "workflow_id", "name", "tenant_id", "api_key_id", "webhook_url", "total_steps", "created_at"
        )
    }
    worker_ids = {e.worker_id for e in events if e.worker_id} | {
        j["worker_id"] for j in jobs.values() if j["worker_id"]
    }
    machines = dict(Worker.objects.filter(id__in=worker_ids).values_list("id", "machine_id"))
    subjects = {}
    for event in events:
        job = jobs.get(event.job_id) if event.job_id else None
        workflow_id = event.workflow_id or (job and job["workflow_id"])
        worker_id = event.worker_id or (job and job["worker_id"])
        subjects[event.id] = Subject(
            job=dict(job) if job else None,
            workflow=dict(workflows[name]) if (name := (event.tenant_id, workflow_id)) in workflows else None,
            attributes={
                "job_type": job and job["type"],
                "priority": job and job["priority"],
                "workflow_id": workflow_id,
                "worker_id": worker_id,
                "machine_id": event.machine_id or (machines.get(worker_id) if worker_id else None),
            },
        )
    return subjects
