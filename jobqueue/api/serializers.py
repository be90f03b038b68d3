"""Request validation and response shapes for the jobs API. Validation only; no state changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.serializers import ClientIdField, StrictSerializer
from core.db import INT_MAX
from core.ids import WORKFLOW_ID_MAX_LENGTH
from jobqueue.dependencies import MAX_DEPENDENCIES
from jobqueue.job_request import STORED_AS_IS, JobRequest
from jobqueue.models import Job, JobExecution
from wire.json_types import JsonList, JsonObject, JsonValue

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,99}$")
NAME_HELP = "letters, digits and . _ : / + - (max 100), starting with a letter or digit"
MAX_GPU_MEMORY_GB = 4096


def _check_name(value: str, what: str) -> str:
    if not NAME_PATTERN.match(value):
        raise serializers.ValidationError(f"invalid {what} {value!r}: use {NAME_HELP}", code="invalid_format")
    return value


class NameField(serializers.CharField):
    def __init__(self, what: str, **kwargs: Any) -> None:
        self.what = what
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data: JsonValue) -> str:
        return _check_name(super().to_internal_value(data), self.what)


class HardwareSerializer(StrictSerializer):
    gpu_memory_gb = serializers.FloatField(min_value=0, max_value=MAX_GPU_MEMORY_GB, required=False)


class RequirementsSerializer(StrictSerializer):
    capabilities = serializers.ListField(child=NameField("capability"), required=False, max_length=64)
    gpu_memory_gb = serializers.FloatField(min_value=0, max_value=MAX_GPU_MEMORY_GB, required=False)
    model = NameField("model", required=False)
    models = serializers.ListField(child=NameField("model"), required=False, max_length=64)
    pool = NameField("pool", required=False)
    customer_isolation = serializers.ChoiceField(
        choices=["none", "loose", "strict"],
        required=False,
        help_text="strict: run only on a worker dedicated to this job's customer_id.",
    )
    # The replaced system's spellings.
    hardware = HardwareSerializer(required=False)
    service_type = serializers.CharField(required=False, max_length=100)


class EpochMillisOrDateTimeField(serializers.DateTimeField):
    """The replaced system sends `workflow_datetime` as epoch milliseconds; ISO 8601 works too."""

    def to_internal_value(self, value: JsonValue) -> datetime:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value / 1000, tz=UTC)
            except (OverflowError, OSError, ValueError) as exc:
                raise serializers.ValidationError(
                    "not a valid epoch milliseconds value", code="invalid"
                ) from exc
        return super().to_internal_value(value)


class JobSubmitSerializer(StrictSerializer):
    type = NameField("job type", required=False)
    service_required = NameField("job type", required=False)
    job_type = NameField("job type", required=False)
    payload = serializers.DictField(required=False)
    prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    parameters = serializers.DictField(required=False)
    priority = serializers.IntegerField(min_value=0, max_value=100, required=False)
    requirements = RequirementsSerializer(required=False)
    webhook_url = serializers.URLField(
        required=False, allow_null=True, max_length=2000, validators=[URLValidator(schemes=["http", "https"])]
    )
    max_retries = serializers.IntegerField(min_value=0, max_value=100, required=False)
    timeout_seconds = serializers.IntegerField(
        min_value=1, max_value=settings.JOB_MAX_TIMEOUT_SECONDS, required=False
    )
    timeout_minutes = serializers.IntegerField(
        min_value=1, max_value=settings.JOB_MAX_TIMEOUT_SECONDS // 60, required=False
    )
    timeout_ms = serializers.IntegerField(  # the replaced system's spelling; whole seconds, rounded up
        min_value=1, max_value=settings.JOB_MAX_TIMEOUT_SECONDS * 1000, required=False
    )
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False)
    idempotency_key = serializers.CharField(required=False, max_length=255, allow_null=True)
    customer_id = serializers.CharField(required=False, max_length=200, allow_null=True)
    concurrency_key = serializers.CharField(
        required=False,
        max_length=200,
        allow_blank=True,
        help_text="Jobs sharing a key run at most concurrency_limit at once (docs/scheduling.md).",
    )
    concurrency_limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=INT_MAX,
        help_text="Most jobs of its concurrency_key running at once; default: the tenant's for the key.",
    )
    ctx = serializers.DictField(required=False, allow_null=True)
    workflow_id = ClientIdField(WORKFLOW_ID_MAX_LENGTH, required=False, allow_null=True)
    workflow_priority = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)
    workflow_datetime = EpochMillisOrDateTimeField(required=False, allow_null=True)
    current_step = serializers.IntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    total_steps = serializers.IntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    depends_on = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=MAX_DEPENDENCIES,
        required=False,
        help_text="Ids of jobs that must complete first; their results become this job's inputs.",
    )
    # Sent by the replaced system's clients; the attempt count is ours to keep, so it is ignored.
    retry_count = serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False)

    def validate(self, attrs: JsonObject) -> JsonObject:
        names = {attrs[k] for k in ("type", "service_required", "job_type") if k in attrs}
        if not names:
            raise serializers.ValidationError({"type": ["this field is required"]}, code="required")
        if len(names) > 1:
            raise serializers.ValidationError({"type": ["type, service_required and job_type disagree"]})
        if "payload" in attrs and ("prompt" in attrs or "parameters" in attrs):
            raise serializers.ValidationError(
                {"payload": ["send either payload or prompt + parameters, not both"]}
            )
        if len({"timeout_seconds", "timeout_minutes", "timeout_ms"} & attrs.keys()) > 1:
            raise serializers.ValidationError(
                {"timeout_seconds": ["send one of timeout_seconds, timeout_minutes and timeout_ms"]}
            )
        current, total = attrs.get("current_step"), attrs.get("total_steps")
        if current is not None and total is not None and current > total:
            raise serializers.ValidationError({"current_step": ["current_step is greater than total_steps"]})
        if attrs.get("concurrency_limit") is not None and not attrs.get("concurrency_key"):
            raise serializers.ValidationError({"concurrency_limit": ["a limit needs its concurrency_key"]})
        requirements = attrs.get("requirements") or {}
        if requirements.get("customer_isolation") == "strict" and not attrs.get("customer_id"):
            raise serializers.ValidationError(
                {"requirements": {"customer_isolation": ["strict isolation needs the job's customer_id"]}}
            )
        service_type = requirements.get("service_type")
        if service_type is not None and service_type not in names:
            raise serializers.ValidationError(
                {"requirements": {"service_type": ["does not match the job type"]}}
            )
        return attrs

    def to_job_request(self) -> JobRequest:
        return submitted_request(self.validated_data)


def request_from_template(template: JsonObject) -> JobRequest:
    """A stored submission body (a schedule's template) as a JobRequest; it was validated when saved."""
    submission = JobSubmitSerializer(data=template)
    submission.is_valid(raise_exception=True)
    return submission.to_job_request()


def _timeout_seconds(data: JsonObject) -> int:
    if "timeout_seconds" in data:
        return int(data["timeout_seconds"])
    if "timeout_minutes" in data:
        return int(data["timeout_minutes"]) * 60
    if "timeout_ms" in data:
        return -(-int(data["timeout_ms"]) // 1000)  # rounded up: never shorter than asked
    return int(settings.JOB_DEFAULT_TIMEOUT_SECONDS)


def submitted_request(data: JsonObject) -> JobRequest:
    """A submission's request, with the jobs it waits for (a workflow step names its own, by step)."""
    request = job_request_from(data)
    request.depends_on = list(dict.fromkeys(data.get("depends_on", [])))
    return request


def job_request_from(data: JsonObject) -> JobRequest:
    """A JobRequest from a submission's validated data (of any client dialect)."""
    payload = data.get("payload")
    if payload is None:
        payload = {k: data[k] for k in ("prompt", "parameters") if k in data}
    requirements = data.get("requirements") or {}
    models = list(requirements.get("models", []))
    if "model" in requirements:
        models.append(requirements["model"])
    gpu_memory = requirements.get("gpu_memory_gb", (requirements.get("hardware") or {}).get("gpu_memory_gb"))
    timeout = _timeout_seconds(data)
    translated: JsonObject = {
        "type": data.get("type") or data.get("service_required") or data["job_type"],
        "payload": payload,
        "priority": data.get("priority", settings.JOB_DEFAULT_PRIORITY),
        "requirements": requirements,
        "required_capabilities": list(requirements.get("capabilities", [])),
        "required_models": models,
        "required_gpu_memory_gb": gpu_memory,
        "required_pool": requirements.get("pool"),
        "max_retries": data.get("max_retries", settings.JOB_DEFAULT_MAX_RETRIES),
        "timeout_seconds": timeout,
        "metadata": data.get("metadata") or {},
        "concurrency_key": data.get("concurrency_key") or "",
    }
    # Every other field the job stores as it is, every dialect names as the job does (or leaves out).
    as_named: JsonObject = {name: data.get(name) for name in STORED_AS_IS if name not in translated}
    return JobRequest(**translated, **as_named)


@extend_schema_field(JobSubmitSerializer(many=True))
class JobSubmissionsField(serializers.ListField):
    """Job submissions, each checked on its own (so a non-atomic batch can keep the valid ones)."""

    child = serializers.JSONField()

    def to_internal_value(self, data: JsonValue) -> JsonList:
        items: JsonList = super().to_internal_value(data)
        if not items:
            raise serializers.ValidationError("send at least one job", code="empty")
        if len(items) > settings.JOB_BATCH_MAX_JOBS:
            raise serializers.ValidationError(
                f"at most {settings.JOB_BATCH_MAX_JOBS} jobs per batch, got {len(items)}", code="too_many"
            )
        return items


class JobBatchSerializer(StrictSerializer):
    jobs = JobSubmissionsField()
    atomic = serializers.BooleanField(
        default=True,
        help_text="true: any invalid job refuses the whole batch (400, nothing created); "
        "false: the valid jobs are created and each invalid one gets its own error",
    )


class CancelSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class JobExecutionSerializer(serializers.ModelSerializer[JobExecution]):
    class Meta:
        model = JobExecution
        fields = [
            "attempt",
            "worker_id",
            "machine_id",
            "outcome",
            "error",
            "assigned_at",
            "started_at",
            "finished_at",
            "duration_ms",
        ]


class JobSerializer(serializers.ModelSerializer[Job]):
    job_id = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "job_id",
            "type",
            "status",
            "priority",
            "payload",
            "requirements",
            "result",
            "error",
            "attempt",
            "retry_count",
            "max_retries",
            "redrive_count",
            "timeout_seconds",
            "scheduled_at",
            "webhook_url",
            "metadata",
            "created_by",
            "customer_id",
            "concurrency_key",
            "concurrency_limit",
            "idempotency_key",
            "correlation_id",
            "ctx",
            "workflow_id",
            "workflow_priority",
            "workflow_datetime",
            "current_step",
            "total_steps",
            "worker_id",
            "machine_id",
            "progress",
            "stage",
            "cancel_requested_at",
            "cancel_reason",
            "created_at",
            "queued_at",
            "assigned_at",
            "started_at",
            "completed_at",
            "updated_at",
        ]


class JobDetailSerializer(JobSerializer):
    executions = JobExecutionSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "executions"]
