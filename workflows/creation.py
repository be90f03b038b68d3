"""Creating a defined workflow: the workflow, a job per step, and the dependency edges, in one
transaction. Steps with no dependencies are dispatched on commit; the others wait."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.utils import timezone

from accounts.models import ApiKey, Tenant
from events.recording import record_workflow_event
from events.types import EventType
from jobqueue.dependencies import Edge, link
from jobqueue.idempotency import create_once
from jobqueue.job_request import JobRequest
from jobqueue.submission import create_job
from wire.json_types import JsonObject
from workflows.definition import resolve_dependencies
from workflows.models import FailurePolicy, Workflow, WorkflowStatus, WorkflowStep
from workflows.sources import check_source


@dataclass
class StepRequest:
    name: str
    job: JobRequest
    depends_on: list[int | str] = field(default_factory=list)
    has_own_priority: bool = False


@dataclass
class WorkflowRequest:
    steps: list[StepRequest]
    name: str = ""
    description: str = ""
    priority: int = 50
    failure_policy: FailurePolicy = FailurePolicy.FAIL_FAST
    webhook_url: str | None = None
    metadata: JsonObject = field(default_factory=dict)
    source: str = ""
    idempotency_key: str | None = None


def create_workflow(
    request: WorkflowRequest, api_key: ApiKey | None, correlation_id: str = ""
) -> tuple[Workflow, bool]:
    """Create the workflow, or return the one already created with the same idempotency key.

    Raises InvalidWorkflow (a 400 naming the step) or SourceNotAllowed before anything is written."""
    check_source(request.source, api_key)
    dependencies = resolve_dependencies(
        [s.name for s in request.steps], [s.depends_on for s in request.steps]
    )
    return create_once(
        Workflow,
        Tenant.id_of(api_key),
        request.idempotency_key,
        lambda: _create(request, dependencies, api_key, correlation_id),
    )


def _create(
    request: WorkflowRequest, dependencies: list[tuple[int, ...]], api_key: ApiKey | None, correlation_id: str
) -> Workflow:
    now = timezone.now()
    workflow = Workflow.objects.create(
        name=request.name,
        description=request.description,
        status=WorkflowStatus.PENDING,
        failure_policy=request.failure_policy,
        priority=request.priority,
        source=request.source,
        webhook_url=request.webhook_url,
        metadata=request.metadata,
        total_steps=len(request.steps),
        tenant_id=Tenant.id_of(api_key),
        api_key=api_key,
        created_by=api_key.name if api_key else "",
        idempotency_key=request.idempotency_key,
        correlation_id=correlation_id,
        order_time=now,
        created_at=now,
        updated_at=now,
    )
    record_workflow_event(
        EventType.WORKFLOW_CREATED,
        workflow.workflow_id,
        correlation_id,
        {
            "total_steps": workflow.total_steps,
            "priority": workflow.priority,
            "failure_policy": request.failure_policy,
        },
        tenant_id=workflow.tenant_id,
    )
    steps = []
    for index, (step, parents) in enumerate(zip(request.steps, dependencies, strict=True)):
        priority = step.job.priority if step.has_own_priority else request.priority
        job = create_job(
            replace(
                step.job,
                priority=priority,
                metadata={**request.metadata, **step.job.metadata},
                workflow_id=workflow.workflow_id,
                workflow_priority=priority,
                workflow_datetime=now,  # one time for the whole workflow: older workflows finish first
                current_step=index,
                total_steps=len(request.steps),
                workflow_step=True,
                waiting=bool(parents),
                tenant_id=workflow.tenant_id,
            ),
            api_key,
            correlation_id,
        )
        steps.append(WorkflowStep(workflow=workflow, index=index, name=step.name, job=job))
    WorkflowStep.objects.bulk_create(steps)
    edges = [
        Edge(steps[index].job_id, steps[parent].job_id, parent, steps[parent].name)
        for index, parents in enumerate(dependencies)
        for parent in parents
    ]
    if edges:
        link(edges)
    return workflow
