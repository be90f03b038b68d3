"""The miniapp's attestation (`POST /api/user_notified`): a user was told of a workflow's result.
Recorded (with who and how), shown on the workflow (`user_notified_at`) and as a
`workflow_user_notified` event in its timeline (the replaced system kept these as "proof" records)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from accounts.models import ApiKey
from accounts.scoping import owned
from core.errors import NotFound
from emprops.models import UserNotified
from events.recording import record_workflow_event
from events.types import EventType
from workflows.lookup import seen_by
from workflows.models import Workflow


def user_notified(api_key: ApiKey, workflow_id: str, user_id: str = "", channel: str = "") -> UserNotified:
    with transaction.atomic():
        workflow = seen_by(owned(Workflow.objects.all(), api_key), api_key, workflow_id)
        if workflow is None:
            raise NotFound(
                f"workflow {workflow_id} not found", field="workflow_id", code="workflow_not_found"
            )
        attested = UserNotified.objects.create(workflow=workflow, user_id=user_id, channel=channel)
        Workflow.objects.filter(pk=workflow.pk).update(user_notified_at=Now())
        record_workflow_event(
            EventType.WORKFLOW_USER_NOTIFIED,
            workflow.workflow_id,
            workflow.correlation_id,
            {"user_id": user_id, "channel": channel},
            tenant_id=workflow.tenant_id,
        )
    return attested
