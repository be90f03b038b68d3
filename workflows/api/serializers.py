"""Request validation and response shapes for the workflows API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.serializers import StrictSerializer
from jobqueue.api.serializers import JobSubmitSerializer, NameField, job_request_from
from wire.json_types import JsonObject, JsonValue
from workflows.creation import StepRequest, WorkflowRequest
from workflows.definition import InvalidWorkflow, default_step_name
from workflows.models import FailurePolicy, Workflow


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]})
class DependencyField(serializers.Field[int | str, int | str, int | str, Any]):
    """A step this one depends on: its index (from 0) or its name."""

    default_error_messages = {"invalid": "a step index (integer from 0) or a step name"}

    def to_internal_value(self, data: JsonValue) -> int | str:
        if isinstance(data, bool) or not isinstance(data, int | str) or (isinstance(data, int) and data < 0):
            self.fail("invalid")
        return data

    def to_representation(self, value: int | str) -> int | str:
        return value


class WorkflowStepSubmitSerializer(JobSubmitSerializer):
    """A step: a job submission plus `name` and `depends_on`. Workflow fields are the workflow's."""

    name = NameField("step name", required=False)
    depends_on = serializers.ListField(child=DependencyField(), required=False, max_length=100)
    # Set by the workflow for each step (DRF drops a field declared None in a subclass).
    workflow_id = workflow_priority = workflow_datetime = current_step = total_steps = None  # type: ignore[assignment]
    idempotency_key = scheduled_at = retry_count = None  # type: ignore[assignment]


class WorkflowSubmitSerializer(StrictSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    steps = serializers.ListField(child=WorkflowStepSubmitSerializer())
    priority = serializers.IntegerField(min_value=0, max_value=100, default=settings.JOB_DEFAULT_PRIORITY)
    failure_policy = serializers.ChoiceField(choices=FailurePolicy.choices, default=FailurePolicy.FAIL_FAST)
    webhook_url = serializers.URLField(
        required=False, allow_null=True, max_length=2000, validators=[URLValidator(schemes=["http", "https"])]
    )
    metadata = serializers.DictField(required=False)
    source = serializers.CharField(required=False, allow_blank=True, max_length=50)  # type: ignore[assignment]  # a field named source
    idempotency_key = serializers.CharField(required=False, max_length=255, allow_null=True)

    def to_internal_value(self, data: JsonValue) -> JsonValue:
        steps = data.get("steps") if isinstance(data, dict) else None
        if isinstance(steps, list) and len(steps) > settings.WORKFLOW_MAX_STEPS:
            # Before validating thousands of steps: name the first one over the limit.
            raise InvalidWorkflow(
                f"a workflow may have at most {settings.WORKFLOW_MAX_STEPS} steps, this one has {len(steps)}",
                field=f"steps.{settings.WORKFLOW_MAX_STEPS}",
                code="too_many_steps",
            )
        return super().to_internal_value(data)

    def to_workflow_request(self) -> WorkflowRequest:
        data = self.validated_data
        return WorkflowRequest(
            steps=[_step_request(index, step) for index, step in enumerate(data["steps"])],
            name=data.get("name", ""),
            description=data.get("description", ""),
            priority=data["priority"],
            failure_policy=data["failure_policy"],
            webhook_url=data.get("webhook_url"),
            metadata=data.get("metadata") or {},
            source=data.get("source", ""),
            idempotency_key=data.get("idempotency_key"),
        )


def _step_request(index: int, step: JsonObject) -> StepRequest:
    return StepRequest(
        name=step.get("name") or default_step_name(index),
        job=job_request_from(step),
        depends_on=list(step.get("depends_on", [])),
        has_own_priority="priority" in step,
    )


class WorkflowSerializer(serializers.ModelSerializer[Workflow]):
    id = serializers.CharField(source="workflow_id", read_only=True, help_text="The same as workflow_id.")

    class Meta:
        model = Workflow
        fields = [
            "id",
            "workflow_id",
            "name",
            "description",
            "mode",
            "status",
            "failure_policy",
            "priority",
            "source",
            "webhook_url",
            "metadata",
            "total_steps",
            "completed_steps",
            "failed_steps",
            "cancelled_steps",
            "progress",
            "created_by",
            "correlation_id",
            "cancel_requested_at",
            "created_at",
            "started_at",
            "completed_at",
            "updated_at",
            "user_notified_at",
        ]


class WorkflowCancelSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
