"""Client-driven workflows: jobs submitted one step at a time with `workflow_id`, `current_step`,
`total_steps`, `workflow_priority` and `workflow_datetime`, as the replaced system's clients do."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max

from events.recording import record_workflow_event
from events.types import EventType
from jobqueue.errors import JobConflict
from jobqueue.job_request import JobRequest
from jobqueue.models import Job
from workflows.definition import default_step_name
from workflows.lookup import of_tenant
from workflows.models import Workflow, WorkflowMode, WorkflowStep
from workflows.sources import check_source


def join_workflow(job: Job, request: JobRequest) -> None:
    """Add the job to its workflow as step `current_step`, creating the workflow with the first step.

    Every step takes the workflow's priority and original time (from its first step), so an older
    workflow's next step goes before a newer workflow's at the same priority."""
    workflow = _lock_or_create(job, request)
    if workflow.mode != WorkflowMode.CLIENT:
        raise JobConflict(
            f"workflow {workflow.workflow_id} was created by POST /api/workflows; its steps are not submitted as jobs",
            field="workflow_id",
            code="workflow_not_client_driven",
        )
    if workflow.is_terminal:
        raise JobConflict(
            f"workflow {workflow.workflow_id} already ended ({workflow.status})",
            field="workflow_id",
            code="workflow_finished",
        )
    index = request.current_step or (workflow.steps.aggregate(last=Max("index"))["last"] or 0) + 1
    if workflow.steps.filter(index=index).exists():
        raise JobConflict(
            f"workflow {workflow.workflow_id} already has a step {index}",
            field="current_step",
            code="workflow_step_exists",
        )
    WorkflowStep.objects.create(workflow=workflow, index=index, name=default_step_name(index), job=job)
    Job.objects.filter(pk=job.pk).update(
        workflow_priority=workflow.priority,
        effective_priority=workflow.priority,
        workflow_datetime=workflow.order_time,
        order_time=workflow.order_time,
    )
    total = max(workflow.total_steps, request.total_steps or 0, index)
    if total != workflow.total_steps:
        Workflow.objects.filter(pk=workflow.pk).update(total_steps=total)


def _lock_or_create(job: Job, request: JobRequest) -> Workflow:
    assert job.workflow_id is not None  # only a job naming a workflow joins one
    workflow = of_tenant(job.tenant_id, job.workflow_id).select_for_update().first()
    if workflow is not None:
        return workflow
    metadata = job.metadata if isinstance(job.metadata, dict) else {}
    source = check_source(str(metadata.get("source", ""))[:50], job.api_key, field="metadata.source")
    try:
        with transaction.atomic():  # a savepoint: a concurrent first step may create it first
            workflow = Workflow.objects.create(
                workflow_id=job.workflow_id,
                mode=WorkflowMode.CLIENT,
                name=str(metadata.get("workflow_name", ""))[:200],
                source=source,
                priority=request.workflow_priority
                if request.workflow_priority is not None
                else request.priority,
                order_time=request.workflow_datetime or job.created_at,
                total_steps=request.total_steps or 0,
                tenant_id=job.tenant_id,
                api_key=job.api_key,
                created_by=job.created_by,
                correlation_id=job.correlation_id,
            )
    except IntegrityError:
        return of_tenant(job.tenant_id, job.workflow_id).select_for_update().get()
    record_workflow_event(
        EventType.WORKFLOW_CREATED,
        workflow.workflow_id,
        workflow.correlation_id,
        {"mode": WorkflowMode.CLIENT, "total_steps": workflow.total_steps, "priority": workflow.priority},
        tenant_id=workflow.tenant_id,
    )
    return Workflow.objects.select_for_update().get(pk=workflow.pk)
