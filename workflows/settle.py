"""Settling a workflow: recount its steps under its row lock and end it (once) when its last step ended.

Every transaction that finishes a step locks the workflow row last and recounts its steps under that
lock, so exactly one of them sees the workflow end; it writes the counts, the progress, the frozen
`step_details` and one `workflow_completed|failed|cancelled` event. Moves follow `states.py`.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models.functions import Now

from events.recording import record_workflow_event
from events.types import EventType
from jobqueue.models import NOT_STARTED_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from wire.json_types import JsonObject
from workflows import states
from workflows.models import Workflow, WorkflowMode, WorkflowStatus, WorkflowStep
from workflows.step_details import step_details


def settle(key: int, finished: tuple[WorkflowStep, Job] | None = None) -> Workflow:
    """Recount the workflow's steps under its row lock; end it when its last step ended (once)."""
    workflow = Workflow.objects.select_for_update().get(pk=key)
    steps = list(workflow.steps.select_related("job"))
    statuses = [s.job.status for s in steps]
    workflow.completed_steps = statuses.count(JobStatus.COMPLETED)
    workflow.failed_steps = statuses.count(JobStatus.FAILED)
    workflow.cancelled_steps = statuses.count(JobStatus.CANCELLED)
    workflow.progress = workflow_progress(steps, workflow.total_steps)
    was = workflow.status
    if not workflow.is_terminal:
        if any(status not in NOT_STARTED_STATUSES for status in statuses):
            workflow.status = states.checked(workflow.status, WorkflowStatus.RUNNING)
            workflow.started_at = workflow.started_at or _earliest_start(steps)
        ending = _ending_status(workflow, steps)
        if ending is not None:
            workflow.status = states.checked(workflow.status, ending)
            workflow.completed_at = Now()
            workflow.step_details = step_details(steps)
    workflow.updated_at = Now()
    workflow.save()
    if finished is not None:
        _record_step_event(workflow, *finished)
    if was != workflow.status:
        _record_status_event(workflow, was)
    return workflow


def workflow_progress(steps: list[WorkflowStep], total_steps: int) -> int:
    """Percent done: completed steps count whole, running ones by their own progress."""
    total = max(total_steps, len(steps))
    done = sum(100 if s.job.status == JobStatus.COMPLETED else s.job.progress for s in steps)
    return min(100, done // total) if total else 0


def _ending_status(workflow: Workflow, steps: list[WorkflowStep]) -> WorkflowStatus | None:
    statuses = [s.job.status for s in steps]
    if not all(status in TERMINAL_STATUSES for status in statuses):
        return None
    if workflow.cancel_requested_at is not None:
        return WorkflowStatus.CANCELLED
    if workflow.failed_steps:
        return WorkflowStatus.FAILED
    if workflow.cancelled_steps:
        return WorkflowStatus.CANCELLED
    if workflow.mode == WorkflowMode.CLIENT:
        # Complete only when every step 1..total_steps completed, not when the last number arrives.
        completed = {s.index for s in steps if s.job.status == JobStatus.COMPLETED}
        if not set(range(1, workflow.total_steps + 1)) <= completed:
            return None
    return WorkflowStatus.COMPLETED


def _earliest_start(steps: list[WorkflowStep]) -> datetime | Now:
    starts = [start for s in steps if (start := s.job.started_at or s.job.assigned_at) is not None]
    return min(starts) if starts else Now()


def _record_step_event(workflow: Workflow, step: WorkflowStep, job: Job) -> None:
    completed = job.status == JobStatus.COMPLETED
    record_workflow_event(
        EventType.WORKFLOW_STEP_COMPLETED if completed else EventType.WORKFLOW_STEP_FAILED,
        workflow.workflow_id,
        workflow.correlation_id,
        {
            "step_index": step.index,
            "name": step.name,
            "job_id": str(job.pk),
            "status": job.status,
            "error": job.error,
            "completed_steps": workflow.completed_steps,
            "failed_steps": workflow.failed_steps,
            "total_steps": workflow.total_steps,
            "progress": workflow.progress,
        },
        tenant_id=workflow.tenant_id,
    )


_STATUS_EVENTS = {
    WorkflowStatus.RUNNING: EventType.WORKFLOW_STARTED,
    WorkflowStatus.COMPLETED: EventType.WORKFLOW_COMPLETED,
    WorkflowStatus.FAILED: EventType.WORKFLOW_FAILED,
    WorkflowStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
}


def _record_status_event(workflow: Workflow, was: str) -> None:
    workflow.refresh_from_db(fields=["completed_at", "started_at", "updated_at"])
    payload: JsonObject = {"status": workflow.status, "previous_status": was}
    if workflow.is_terminal:
        assert workflow.completed_at is not None  # set with the ending status
        payload.update(
            total_steps=workflow.total_steps,
            success_count=workflow.completed_steps,
            failed_count=workflow.failed_steps,
            cancelled_count=workflow.cancelled_steps,
            completed_at=workflow.completed_at.isoformat(),
            step_details=workflow.step_details,
        )
    record_workflow_event(
        _STATUS_EVENTS[WorkflowStatus(workflow.status)],
        workflow.workflow_id,
        workflow.correlation_id,
        payload,
        tenant_id=workflow.tenant_id,
    )
