"""A workflow's own rules over its steps' jobs: when a step ends, in that change's transaction, a
failure under `fail_fast` cancels the steps not yet started, then the workflow is settled
(`settle.py`). Steps wait for each other by the one dependency rule (`jobqueue/dependencies.py`);
this module only holds a step back while its workflow is ending.

Lock order (with `jobqueue`'s): the finished job's row, then its dependents' job rows in id order,
then the workflow row last (in `settle`).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q
from django.db.models.functions import Now

from events.recording import record_workflow_event
from events.types import EventType
from jobqueue.cancellation import cancel_unstarted
from jobqueue.models import NOT_STARTED_STATUSES, Job, JobKey, JobStatus
from workflows import states
from workflows.lookup import of_tenant
from workflows.models import (
    TERMINAL_WORKFLOW_STATUSES,
    FailurePolicy,
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
    """A step's job reached a terminal state: under `fail_fast` a failure cancels every step not yet
    started, then the workflow is recounted. (What depends on the step is released or cancelled by
    the one dependency rule, `jobqueue/dependencies.py`, before this runs.)"""
    if job.status != JobStatus.COMPLETED:
        _cancel_what_cannot_run(step, job)
    settle(step.workflow_id, finished=(step, job))


def held_back(job_ids: Sequence[JobKey]) -> set[JobKey]:
    """Of these steps whose dependencies completed, those whose workflow is ending (cancel requested,
    or already finished): they stay waiting, to be cancelled, not run."""
    ending = Q(workflow__cancel_requested_at__isnull=False) | Q(
        workflow__status__in=TERMINAL_WORKFLOW_STATUSES
    )
    return set(WorkflowStep.objects.filter(ending, job_id__in=job_ids).values_list("job_id", flat=True))


def _cancel_what_cannot_run(step: WorkflowStep, job: Job) -> None:
    """A step failed for good or was cancelled. Under `fail_fast` (and in client-driven workflows)
    every step not yet started is cancelled; under `continue` only what depends on it, which the
    dependency rule has cancelled already."""
    workflow = step.workflow
    if workflow.failure_policy == FailurePolicy.CONTINUE and workflow.mode == WorkflowMode.DEFINED:
        return
    targets = Job.objects.filter(workflow_step__workflow_id=workflow.pk).exclude(pk=job.pk)
    reason = f"workflow step {step.name!r} {job.status}"
    for job_id in targets.filter(status__in=NOT_STARTED_STATUSES).order_by("id").values_list("id", flat=True):
        cancel_unstarted(job_id, reason)
