"""Moving a workflow on when one of its steps' jobs changes state, in that change's transaction.

Lock order (with `jobqueue`'s): the finished job's row, then its dependents' step rows and job rows in
id order, then the workflow row last. Every transaction that finishes a step locks the workflow row
last and recounts its steps under that lock, so exactly one of them sees the workflow complete.
"""

from __future__ import annotations

from django.db.models import F
from django.db.models.functions import Now

from events.recording import record_workflow_event
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.cancellation import cancel_unstarted
from jobqueue.models import NOT_STARTED_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from jobqueue.transitions import transition
from workflows.models import FailurePolicy, Workflow, WorkflowMode, WorkflowStatus, WorkflowStep
from workflows.step_details import step_details


def step_of(job: Job) -> WorkflowStep | None:
    if not job.workflow_id:
        return None
    return WorkflowStep.objects.select_related("workflow").filter(job_id=job.pk).first()


def mark_running(workflow_id: str) -> None:
    """The first step started: the workflow is running."""
    started = Workflow.objects.filter(pk=workflow_id, status=WorkflowStatus.PENDING).update(
        status=WorkflowStatus.RUNNING, started_at=Now(), updated_at=Now()
    )
    if started:
        workflow = Workflow.objects.only("correlation_id").get(pk=workflow_id)
        record_workflow_event(
            EventType.WORKFLOW_STARTED,
            workflow_id,
            workflow.correlation_id,
            {"status": WorkflowStatus.RUNNING},
        )


def step_finished(step: WorkflowStep, job: Job) -> None:
    """A step's job reached a terminal state: release or cancel what depends on it, then recount."""
    if job.status == JobStatus.COMPLETED:
        _release_dependents(step)
    else:
        _cancel_what_cannot_run(step, job)
    settle(step.workflow_id, finished=(step, job))


def _release_dependents(step: WorkflowStep) -> None:
    """Count this completion off each dependent; a dependent with none left goes `waiting` -> `pending`,
    with its dependencies' results as its inputs. The counter decrement is under the step row's lock,
    so when two parents complete at once, exactly one of them sees the count reach zero."""
    children = list(
        WorkflowStep.objects.select_for_update().filter(parent_links__depends_on=step).order_by("id")
    )
    if not children:
        return
    WorkflowStep.objects.filter(pk__in=[c.pk for c in children]).update(
        open_dependencies=F("open_dependencies") - 1
    )
    ready = [child for child in children if child.open_dependencies == 1]
    workflow = Workflow.objects.only("status", "cancel_requested_at").get(pk=step.workflow_id)
    if not ready or workflow.is_terminal or workflow.cancel_requested_at is not None:
        return  # a cancelled or failed workflow's waiting steps are cancelled, not released
    released = []
    for child in sorted(ready, key=lambda c: c.job_id):
        job = transition(
            child.job_id,
            from_statuses={JobStatus.WAITING},
            to=JobStatus.PENDING,
            inputs=_inputs_of(child),
            queued_at=Now(),
            event=EventType.JOB_QUEUED,
            event_payload={"reason": "dependencies_completed"},
        )
        if job is not None:
            released.append(job.pk)
    lifecycle.jobs_pending(released)


def _inputs_of(step: WorkflowStep) -> list[dict]:
    """What a released step receives from the steps it depends on."""
    parents = WorkflowStep.objects.filter(child_links__step=step).select_related("job").order_by("index")
    return [
        {"step_index": p.index, "name": p.name, "job_id": str(p.job_id), "result": p.job.result}
        for p in parents
    ]


def _cancel_what_cannot_run(step: WorkflowStep, job: Job) -> None:
    """A step failed for good or was cancelled. Under `fail_fast` every step not yet started is
    cancelled; under `continue` only the steps that depend on it (they can never run)."""
    workflow = step.workflow
    if workflow.failure_policy == FailurePolicy.CONTINUE and workflow.mode == WorkflowMode.DEFINED:
        targets = Job.objects.filter(pk__in=_descendant_job_ids(step))
    else:
        targets = Job.objects.filter(workflow_step__workflow_id=workflow.pk).exclude(pk=job.pk)
    reason = f"workflow step {step.name!r} {job.status}"
    for job_id in targets.filter(status__in=NOT_STARTED_STATUSES).order_by("id").values_list("id", flat=True):
        cancel_unstarted(job_id, reason)


def _descendant_job_ids(step: WorkflowStep) -> set:
    edges = WorkflowStep.depends_on.through.objects.filter(step__workflow_id=step.workflow_id)
    children: dict[int, list[int]] = {}
    for child_id, parent_id in edges.values_list("step_id", "depends_on_id"):
        children.setdefault(parent_id, []).append(child_id)
    seen: set[int] = set()
    frontier = [step.pk]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in seen:
                seen.add(child)
                frontier.append(child)
    return set(WorkflowStep.objects.filter(pk__in=seen).values_list("job_id", flat=True))


def settle(workflow_id: str, finished: tuple[WorkflowStep, Job] | None = None) -> Workflow:
    """Recount the workflow's steps under its row lock; end it when its last step ended (once)."""
    workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
    steps = list(workflow.steps.select_related("job"))
    statuses = [s.job.status for s in steps]
    workflow.completed_steps = statuses.count(JobStatus.COMPLETED)
    workflow.failed_steps = statuses.count(JobStatus.FAILED)
    workflow.cancelled_steps = statuses.count(JobStatus.CANCELLED)
    workflow.progress = workflow_progress(steps, workflow.total_steps)
    was = workflow.status
    if not workflow.is_terminal:
        if any(status not in NOT_STARTED_STATUSES for status in statuses):
            workflow.status = WorkflowStatus.RUNNING
            workflow.started_at = workflow.started_at or _earliest_start(steps)
        ending = _ending_status(workflow, steps)
        if ending is not None:
            workflow.status = ending
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


def _earliest_start(steps: list[WorkflowStep]):
    starts = [s.job.started_at or s.job.assigned_at for s in steps if s.job.started_at or s.job.assigned_at]
    return min(starts) if starts else Now()


def _record_step_event(workflow: Workflow, step: WorkflowStep, job: Job) -> None:
    completed = job.status == JobStatus.COMPLETED
    record_workflow_event(
        EventType.WORKFLOW_STEP_COMPLETED if completed else EventType.WORKFLOW_STEP_FAILED,
        workflow.pk,
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
    )


_STATUS_EVENTS = {
    WorkflowStatus.RUNNING: EventType.WORKFLOW_STARTED,
    WorkflowStatus.COMPLETED: EventType.WORKFLOW_COMPLETED,
    WorkflowStatus.FAILED: EventType.WORKFLOW_FAILED,
    WorkflowStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
}


def _record_status_event(workflow: Workflow, was: str) -> None:
    workflow.refresh_from_db(fields=["completed_at", "started_at", "updated_at"])
    payload = {"status": workflow.status, "previous_status": was}
    if workflow.is_terminal:
        payload.update(
            total_steps=workflow.total_steps,
            success_count=workflow.completed_steps,
            failed_count=workflow.failed_steps,
            cancelled_count=workflow.cancelled_steps,
            completed_at=workflow.completed_at.isoformat(),
            step_details=workflow.step_details,
        )
    record_workflow_event(_STATUS_EVENTS[workflow.status], workflow.pk, workflow.correlation_id, payload)
