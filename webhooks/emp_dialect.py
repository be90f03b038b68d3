"""The replaced system's webhook dialect, for receivers written against it: an endpoint whose `format`
is "emp" gets its event names (`complete_job`, `update_job_progress`, …), its envelope
`{event_type, event_id, timestamp (ms), webhook_id, data}` and its `X-Webhook-Signature: sha256=<hex
HMAC-SHA256 of the body, keyed with the endpoint's secret>` beside the Standard Webhooks headers.
That signature carries no timestamp, so it cannot tell a replay: Standard Webhooks stays the default.
"""

from __future__ import annotations

import hashlib
import hmac

from events.models import Event
from events.types import EventType
from webhooks.payloads import Subject, dumps
from wire.json_types import JsonObject

# Ours -> the replaced system's name for the same event.
EMP_NAMES = {
    EventType.JOB_SUBMITTED.value: "job_submitted",
    EventType.JOB_PROGRESS.value: "update_job_progress",
    EventType.JOB_COMPLETED.value: "complete_job",
    EventType.JOB_FAILED.value: "job_failed",
    EventType.JOB_CANCELLED.value: "cancel_job",
    EventType.WORKFLOW_CREATED.value: "workflow_submitted",
    EventType.WORKFLOW_COMPLETED.value: "workflow_completed",
    EventType.WORKFLOW_FAILED.value: "workflow_failed",
}
OURS = {emp: ours for ours, emp in EMP_NAMES.items()}
_COMMON = ("job_id", "worker_id", "machine_id", "workflow_id")


def our_event_type(name: str) -> str:
    """An event type as an endpoint may name it (ours, or the replaced system's), in our name."""
    return OURS.get(name, name)


def emp_name(event_type: str) -> str:
    return EMP_NAMES.get(event_type, event_type)


def body(event: Event, subject: Subject, endpoint_id: str) -> str:
    payload = event.payload or {}
    data: JsonObject = {
        name: str(value)
        for name in _COMMON
        if (value := getattr(event, name) or subject.attributes.get(name))
    }
    if subject.job is not None:
        data.update(job_type=subject.job["type"], priority=subject.job["priority"])
    data.update(payload)
    if event.type == EventType.JOB_SUBMITTED:
        data["job_status"] = "pending"
    stamp = event.created_at.isoformat()
    if event.type == EventType.JOB_COMPLETED:
        data["completed_at"] = stamp
    elif event.type == EventType.JOB_FAILED:
        data["failed_at"] = stamp
    return dumps(
        {
            "event_type": emp_name(event.type),
            "event_id": str(event.id),
            "timestamp": int(event.created_at.timestamp() * 1000),
            "webhook_id": endpoint_id,
            "data": data,
        }
    )


def headers(
    event_type: str, endpoint_id: str, event_id: int | None, secret: str, payload: bytes
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return {
        "x-webhook-event": emp_name(event_type),
        "x-webhook-id": endpoint_id,
        "x-event-id": str(event_id or ""),
        "x-webhook-signature": f"sha256={signature}",
    }
