"""The job views that answer with the control plane's view of a job: why a pending one waits, and the
completion of delegated jobs no worker runs."""

from __future__ import annotations

from uuid import UUID

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.scoping import readable
from core.api.schema import envelope
from core.api.serializers import StrictSerializer
from dispatch.delegation import complete_delegated
from dispatch.matching import eligibility
from dispatch.scheduling import held_by_limit
from jobqueue.api.serializers import CancelSerializer, JobDetailSerializer, JobSerializer
from jobqueue.api.views import JOB_CANCELLED, cancel_response
from jobqueue.models import Job, JobStatus
from wire.json_types import JsonObject, JsonValue


class JobDetailView(APIView):
    @extend_schema(responses=envelope("JobDetailEnvelope", job=JobDetailSerializer()))
    def get(self, request: Request, job_id: UUID) -> Response:
        visible = readable(Job.objects.prefetch_related("executions"), api_key_of(request))
        job = get_object_or_404(visible, pk=job_id)
        body = JobDetailSerializer(job).data
        if job.status == JobStatus.PENDING:
            # "no eligible worker", and which requirement, if so; or the limit that holds it
            body["eligibility"] = {**eligibility(job), "held_by_limit": held_by_limit(job)}
        return Response({"success": True, "job": body})

    @extend_schema(request=CancelSerializer, responses={200: JOB_CANCELLED, 202: JOB_CANCELLED})
    def delete(self, request: Request, job_id: UUID) -> Response:
        return cancel_response(request, job_id)


class DelegatedErrorSerializer(StrictSerializer):
    code = serializers.CharField(max_length=100, default="DELEGATED_FAILURE")
    message = serializers.CharField(max_length=2000)
    # Permanent unless said otherwise: the client knows whether trying again could help.
    error_class = serializers.ChoiceField(
        choices=["permanent", "transient"], default="permanent", source="class"
    )

    def to_internal_value(self, data: JsonValue) -> JsonValue:
        if isinstance(data, dict) and "class" in data:
            data = {**{k: v for k, v in data.items() if k != "class"}, "error_class": data["class"]}
        return super().to_internal_value(data)


class DelegatedResultSerializer(StrictSerializer):
    result = serializers.JSONField(required=False, help_text="The job's result.")
    error = DelegatedErrorSerializer(required=False, help_text="Or why it failed.")

    def validate(self, attrs: JsonObject) -> JsonObject:
        if ("result" in attrs) == ("error" in attrs):
            raise serializers.ValidationError("send either result or error", code="result_or_error")
        return attrs


class JobResultView(APIView):
    @extend_schema(
        request=DelegatedResultSerializer,
        responses=envelope(
            "DelegatedResultRecorded",
            job_id=serializers.UUIDField(),
            status=serializers.CharField(),
            job=JobSerializer(),
        ),
    )
    def post(self, request: Request, job_id: UUID) -> Response:
        """Complete (or fail) a pending job of a type no worker runs: delegated work, by a delegate key."""
        body = DelegatedResultSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = complete_delegated(job_id, api_key_of(request), **body.validated_data)
        return Response(
            {"success": True, "job_id": str(job.id), "status": job.status, "job": JobSerializer(job).data}
        )
