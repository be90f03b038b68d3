"""Recurring job schedules API: /api/schedules."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from croniter import croniter
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.quotas import ensure_room_for_one_more
from accounts.scoping import owned
from core.api.pagination import PAGE_PARAMETERS, page_response, read_page
from core.api.schema import envelope, page
from core.api.serializers import StrictSerializer
from jobqueue.api.serializers import JobSubmitSerializer
from jobqueue.models import JobSchedule
from jobqueue.schedules import fires, next_run_after
from wire.json_types import JsonObject

MAX_INTERVAL_SECONDS = 366 * 24 * 3600
TEMPLATE_FORBIDDEN = ("idempotency_key", "scheduled_at")  # each run gets its own


class ScheduleSerializer(StrictSerializer, serializers.ModelSerializer[JobSchedule]):
    job = serializers.DictField(source="job_template", help_text="A POST /api/jobs body.")
    interval_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_INTERVAL_SECONDS, required=False, allow_null=True
    )
    last_job_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = JobSchedule
        fields = [
            "id",
            "name",
            "cron",
            "interval_seconds",
            "job",
            "enabled",
            "next_run_at",
            "last_run_at",
            "last_job_id",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "next_run_at",
            "last_run_at",
            "last_job_id",
            "last_error",
            "created_at",
            "updated_at",
        ]

    def validate_name(self, value: str) -> str:
        taken = JobSchedule.objects.filter(tenant_id=self.context["tenant_id"], name=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("a schedule with this name already exists", code="unique")
        return value

    def validate_cron(self, value: str) -> str:
        value = " ".join(value.split())
        if value and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise serializers.ValidationError("not a valid five-field cron expression", code="invalid_cron")
        if value and not fires(value, timezone.now()):
            raise serializers.ValidationError(
                "this cron expression never fires (such as 31 February)", code="cron_never_fires"
            )
        return value

    def validate_job(self, template: JsonObject) -> JsonObject:
        errors = {
            key: ["set per run; not allowed in a template"] for key in TEMPLATE_FORBIDDEN if key in template
        }
        submission = JobSubmitSerializer(data=template)
        if not submission.is_valid():
            errors.update(submission.errors)
        if errors:
            raise serializers.ValidationError(errors)
        return template

    def validate(self, attrs: JsonObject) -> JsonObject:
        cron = attrs.get("cron", self.instance.cron if self.instance else "")
        interval = attrs.get("interval_seconds", self.instance.interval_seconds if self.instance else None)
        if bool(cron) == (interval is not None):
            raise serializers.ValidationError({"cron": ["give exactly one of cron and interval_seconds"]})
        return attrs

    def save(self, **kwargs: Any) -> JobSchedule:
        timing_changed = self.instance is None or any(
            name in self.validated_data for name in ("cron", "interval_seconds", "enabled")
        )
        if self.instance is not None:
            kwargs["last_error"] = ""  # changed by its owner: tried afresh
        schedule: JobSchedule = super().save(**kwargs)
        if timing_changed:
            schedule.next_run_at = next_run_after(schedule, timezone.now()) if schedule.enabled else None
            schedule.save(update_fields=["next_run_at"])
        return schedule


def _owned(request: Request) -> QuerySet[JobSchedule]:
    """The caller's tenant's schedules (an operator does not reach other tenants' schedules)."""
    return owned(JobSchedule.objects.all(), api_key_of(request))


SCHEDULE = envelope("ScheduleEnvelope", schedule=ScheduleSerializer())


class ScheduleCollectionView(APIView):
    @extend_schema(request=ScheduleSerializer, responses={201: SCHEDULE})
    def post(self, request: Request) -> Response:
        api_key = api_key_of(request)
        body = ScheduleSerializer(data=request.data, context={"tenant_id": api_key.tenant_id})
        body.is_valid(raise_exception=True)
        used = JobSchedule.objects.filter(tenant_id=api_key.tenant_id).count()
        ensure_room_for_one_more(api_key.tenant, "max_schedules", used)
        try:
            with transaction.atomic():
                schedule = body.save(api_key=api_key, tenant_id=api_key.tenant_id)
        except IntegrityError as exc:  # the same name, saved by a concurrent request
            raise serializers.ValidationError(
                {"name": [ErrorDetail("a schedule with this name already exists", code="unique")]}
            ) from exc
        return Response(
            {"success": True, "schedule": ScheduleSerializer(schedule).data}, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        operation_id="api_schedules_list",
        parameters=PAGE_PARAMETERS,
        responses=page("SchedulePage", "schedules", ScheduleSerializer),
    )
    def get(self, request: Request) -> Response:
        return page_response(
            "schedules", _owned(request).order_by("name"), ScheduleSerializer, read_page(request)
        )


class ScheduleDetailView(APIView):
    @extend_schema(responses=SCHEDULE)
    def get(self, request: Request, schedule_id: UUID) -> Response:
        schedule = get_object_or_404(_owned(request), pk=schedule_id)
        return Response({"success": True, "schedule": ScheduleSerializer(schedule).data})

    @extend_schema(request=ScheduleSerializer, responses=SCHEDULE)
    def patch(self, request: Request, schedule_id: UUID) -> Response:
        schedule = get_object_or_404(_owned(request), pk=schedule_id)
        context = {"tenant_id": schedule.tenant_id}
        body = ScheduleSerializer(schedule, data=request.data, partial=True, context=context)
        body.is_valid(raise_exception=True)
        # Its runs submit with the key that saved it last, never with a key of the one who made it.
        saved = body.save(api_key=api_key_of(request))
        return Response({"success": True, "schedule": ScheduleSerializer(saved).data})

    @extend_schema(responses=envelope("ScheduleDeleted", deleted=serializers.UUIDField()))
    def delete(self, request: Request, schedule_id: UUID) -> Response:
        get_object_or_404(_owned(request), pk=schedule_id).delete()
        return Response({"success": True, "deleted": str(schedule_id)})
