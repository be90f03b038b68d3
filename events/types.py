"""Every kind of event the log holds (each has a payload schema in `events/schemas.py`)."""

from __future__ import annotations

from django.db import models


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
    WORKFLOW_USER_NOTIFIED = "workflow_user_notified"  # the miniapp told a user of its result
    MACHINE_REGISTERED = "machine_registered"
    MACHINE_STATUS_CHANGED = "machine_status_changed"
    WORKER_REGISTERED = "worker_registered"
    WORKER_STATUS_CHANGED = "worker_status_changed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    SCHEDULE_DISABLED = "schedule_disabled"


# The events that end a job or a workflow, each with the final status it leaves (the statuses'
# values in `jobqueue.models.JobStatus` and `workflows.models.WorkflowStatus`). Webhooks, metrics
# and EmProps' notifications act on these and no others.
JOB_ENDINGS: dict[str, str] = {
    EventType.JOB_COMPLETED: "completed",
    EventType.JOB_FAILED: "failed",
    EventType.JOB_CANCELLED: "cancelled",
}
WORKFLOW_ENDINGS: dict[str, str] = {
    EventType.WORKFLOW_COMPLETED: "completed",
    EventType.WORKFLOW_FAILED: "failed",
    EventType.WORKFLOW_CANCELLED: "cancelled",
}
ENDINGS = {**JOB_ENDINGS, **WORKFLOW_ENDINGS}
