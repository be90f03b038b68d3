"""What a webhook says: one JSON body per event, built once when the delivery is created.

Top level: `type`/`timestamp`/`data` (the Standard Webhooks envelope, `data` being the event's own
payload), plus what receivers look for without digging: `event_type`, `event_id`, the entity ids,
`status`, `result`/`error`, timestamps, `correlation_id`, and for workflows the step counts and
the one `step_details` shape of the workflows API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder

from events.models import Event
from wire.json_types import JsonObject

TEST_EVENT_TYPE = "webhook.test"
_JOB_ROW_FIELDS = ("type", "priority", "created_at", "started_at", "completed_at")
_WORKFLOW_END_FIELDS = (
    "total_steps",
    "success_count",
    "failed_count",
    "cancelled_count",
    "step_details",
    "completed_at",
)


@dataclass
class Subject:
    """What an event is about, as filters and per-entity webhook URLs need it."""

    job: JsonObject | None = None
    workflow: JsonObject | None = None
    machine_id: str | None = None
    attributes: JsonObject = field(default_factory=dict)


def dumps(body: JsonObject) -> str:
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"))


def event_body(event: Event, subject: Subject) -> str:
    payload = event.payload or {}
    body: JsonObject = {
        "type": event.type,
        "timestamp": _iso(event.created_at),
        "event_type": event.type,
        "event_id": event.id,
        "correlation_id": event.correlation_id,
    }
    for name in ("job_id", "workflow_id", "machine_id", "worker_id"):
        value = getattr(event, name) or subject.attributes.get(name)
        if value:
            body[name] = str(value)
    if "status" in payload:
        body["status"] = payload["status"]
    for name in ("result", "error"):
        if name in payload:
            body[name] = payload[name]
    if subject.job is not None:
        job = subject.job
        body.update(
            job_type=job["type"],
            priority=job["priority"],
            created_at=_iso(job["created_at"]),
            started_at=_iso(job["started_at"]),
            completed_at=_iso(job["completed_at"]),
        )
    if subject.workflow is not None and event.job_id is None:
        workflow = subject.workflow
        body.update(name=workflow["name"], created_at=_iso(workflow["created_at"]))
        body.update({name: payload[name] for name in _WORKFLOW_END_FIELDS if name in payload})
        body.setdefault("total_steps", workflow["total_steps"])
    body["data"] = payload
    return dumps(body)


def test_body(endpoint_id: str, now: datetime) -> str:
    return dumps(
        {
            "type": TEST_EVENT_TYPE,
            "timestamp": _iso(now),
            "event_type": TEST_EVENT_TYPE,
            "event_id": None,
            "data": {"endpoint_id": endpoint_id, "message": "A test message from the GPU job queue."},
        }
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
