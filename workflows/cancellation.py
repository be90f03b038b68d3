"""Cancelling a workflow: every step not finished is cancelled, running ones cooperatively."""

from __future__ import annotations

import contextlib

from django.db import transaction
from django.db.models.functions import Now

from core.errors import Conflict, NotFound
from events.recording import record_workflow_event
from events.types import EventType
from jobqueue.cancellation import cancel_job
from jobqueue.errors import JobAlreadyFinished
from jobqueue.models import TERMINAL_STATUSES, Job
from workflows.models import Workflow


class WorkflowNotFound(NotFound):
    """No such workflow."""


class WorkflowAlreadyFinished(Conflict):
    """The workflow already ended and cannot change."""

    code = "workflow_already_finished"


def cancel_workflow(key: int, reason: str = "") -> Workflow:
    """Mark the workflow cancelled-on-request (no step is released from then on), then cancel each
    unfinished step in a transaction of its own, so no transaction holds more than one job's lock."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().filter(pk=key).first()
        if workflow is None:
            raise WorkflowNotFound()
        if workflow.is_terminal:
            raise WorkflowAlreadyFinished(f"workflow is already {workflow.status}", status=workflow.status)
        if workflow.cancel_requested_at is None:
            Workflow.objects.filter(pk=workflow.pk).update(cancel_requested_at=Now(), updated_at=Now())
            record_workflow_event(
                EventType.WORKFLOW_CANCEL_REQUESTED,
                workflow.workflow_id,
                workflow.correlation_id,
                {"reason": reason},
                tenant_id=workflow.tenant_id,
            )
    unfinished = Job.objects.filter(workflow_step__workflow_id=key).exclude(status__in=TERMINAL_STATUSES)
    for job_id in unfinished.order_by("id").values_list("id", flat=True):
        with contextlib.suppress(JobAlreadyFinished):  # it finished meanwhile
            cancel_job(job_id, reason or "workflow cancelled")
    return Workflow.objects.get(pk=key)
