"""One schema per event type: the payload keys it must carry and their JSON types.

Checked whenever an event is written (a mismatch is a programming error and aborts the change's
transaction); documented for consumers in docs/events.md. Extra keys are allowed, so adding one is
backwards compatible; removing or retyping one needs a new `version`.
"""

from __future__ import annotations

from events.types import EventType
from wire.json_types import JsonObject

Types = tuple[type, ...]
STR: Types = (str,)
INT: Types = (int,)
OBJ: Types = (dict,)
LIST: Types = (list,)
NULLABLE_STR: Types = (str, type(None))
NULLABLE_OBJ: Types = (dict, type(None))
ANY: Types = (object,)

_JOB = {"status": STR, "attempt": INT}
_WORKFLOW_STEP = {
    "step_index": INT,
    "name": STR,
    "job_id": STR,
    "status": STR,
    "error": NULLABLE_OBJ,
    "completed_steps": INT,
    "failed_steps": INT,
    "total_steps": INT,
    "progress": INT,
}
_WORKFLOW_END = {
    "status": STR,
    "total_steps": INT,
    "success_count": INT,
    "failed_count": INT,
    "cancelled_count": INT,
    "completed_at": STR,
    "step_details": LIST,
}

SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    EventType.JOB_SUBMITTED: {**_JOB, "type": STR, "priority": INT, "scheduled_at": NULLABLE_STR},
    EventType.JOB_QUEUED: {**_JOB, "reason": STR},
    EventType.JOB_ASSIGNED: {**_JOB, "queue": STR},
    EventType.JOB_STARTED: {**_JOB, "worker_id": STR},
    EventType.JOB_PROGRESS: {**_JOB, "progress": INT, "stage": STR},
    EventType.JOB_COMPLETED: {**_JOB, "result": ANY},
    EventType.JOB_FAILED: {**_JOB, "error": OBJ},
    EventType.JOB_CANCEL_REQUESTED: {**_JOB, "reason": STR},
    EventType.JOB_CANCELLED: {**_JOB, "reason": STR},
    EventType.JOB_RETRY_SCHEDULED: {
        **_JOB,
        "error": OBJ,
        "retry_count": INT,
        "max_retries": INT,
        "next_run_at": STR,
    },
    EventType.JOB_DEAD_LETTERED: {**_JOB, "reason": STR, "error": OBJ},
    EventType.JOB_REQUEUED: {
        **_JOB,
        "dead_letter_id": INT,
        "reason": STR,
        "redrive_count": INT,
        "requeued_by": STR,
    },
    EventType.DEAD_LETTER_DISCARDED: {**_JOB, "dead_letter_id": INT, "reason": STR, "discarded_by": STR},
    EventType.WORKFLOW_CREATED: {"total_steps": INT, "priority": INT},
    EventType.WORKFLOW_STARTED: {"status": STR},
    EventType.WORKFLOW_STEP_COMPLETED: _WORKFLOW_STEP,
    EventType.WORKFLOW_STEP_FAILED: _WORKFLOW_STEP,
    EventType.WORKFLOW_CANCEL_REQUESTED: {"reason": STR},
    EventType.WORKFLOW_COMPLETED: _WORKFLOW_END,
    EventType.WORKFLOW_FAILED: _WORKFLOW_END,
    EventType.WORKFLOW_CANCELLED: _WORKFLOW_END,
    EventType.WORKFLOW_USER_NOTIFIED: {"user_id": STR, "channel": STR},
    EventType.MACHINE_REGISTERED: {"hostname": STR, "pool": STR, "gpu_count": INT},
    EventType.MACHINE_STATUS_CHANGED: {"from": STR, "to": STR, "draining": (bool,)},
    EventType.WORKER_REGISTERED: {"pool": STR, "job_types": LIST, "restarted": (bool,)},
    EventType.WORKER_STATUS_CHANGED: {"from": STR, "to": STR},
    EventType.WEBHOOK_ENDPOINT_DISABLED: {"endpoint_id": STR, "url": STR, "reason": STR},
    EventType.SCHEDULE_DISABLED: {"schedule_id": STR, "name": STR, "reason": STR},
}


class InvalidEvent(Exception):
    """An event does not match its schema: a bug in the code writing it."""


def validate_event(event_type: str, payload: JsonObject) -> None:
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise InvalidEvent(f"unknown event type {event_type!r}")
    for key, types in schema.items():
        if key not in payload:
            raise InvalidEvent(f"{event_type} needs payload.{key}")
        value = payload[key]
        if types is ANY:
            continue
        if isinstance(value, bool) and bool not in types:  # bool is an int in Python, not in JSON
            raise InvalidEvent(f"{event_type}: payload.{key} must be {_names(types)}, not a boolean")
        if not isinstance(value, types):
            raise InvalidEvent(
                f"{event_type}: payload.{key} must be {_names(types)}, got {type(value).__name__}"
            )


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)
