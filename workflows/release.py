"""Releasing a workflow's steps: when a step's job ends, in that change's transaction, its dependents
are released (all their dependencies completed) or cancelled (they never can run), then the workflow
is settled (`settle.py`).

Lock order (with `jobqueue`'s): the finished job's row, then its dependents' step rows and job rows in
id order, then the workflow row last (in `settle`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.db.models.functions import Now

from events.recording import record_workflow_event
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.cancellation import cancel_unstarted
from jobqueue.dependencies import release_waiting
from jobqueue.models import NOT_STARTED_STATUSES, Job, JobStatus
from workflows import states
from workflows.lookup import of_tenant
from workflows.models import (
    FailurePolicy,
    Workflow,
    WorkflowDependency,
    WorkflowMode,
    WorkflowStatus,
    WorkflowStep,
)
from workflows.settle import settle


def step_of(job: Job) -> WorkflowStep | None:
    if not job.workflow_id:
        return None
    return WorkflowStep.objects.select_related("workflow").filter(job_id=job.pk).first()


def mark_running(tenant_id: int, workflow_id: str) -> None:
    """The first step started: the workflow is running."""
    started = (
        of_tenant(tenant_id, workflow_id)
        .filter(status__in=states.sources_of(WorkflowStatus.RUNNING) - {WorkflowStatus.RUNNING})
        .update(status=WorkflowStatus.RUNNING, started_at=Now(), updated_at=Now())
    )
    if started:
        workflow = of_tenant(tenant_id, workflow_id).only("correlation_id", "tenant_id").get()
        record_workflow_event(
            EventType.WORKFLOW_STARTED,
            workflow_id,
            workflow.correlation_id,
            {"status": WorkflowStatus.RUNNING},
            tenant_id=workflow.tenant_id,
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
        job = release_waiting(child.job_id, _inputs_of(child))
        if job is not None:
            released.append(job.pk)
    lifecycle.jobs_pending(released)


def _inputs_of(step: WorkflowStep) -> list[dict[str, Any]]:
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


def _descendant_job_ids(step: WorkflowStep) -> set[Any]:
    edges = WorkflowDependency.objects.filter(step__workflow_id=step.workflow_id)
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
