"""Jobs API views: parse, call one domain function, shape the response."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobqueue.api.filters import JobFilter, filter_or_400, filter_parameters
from jobqueue.api.pagination import page_response, read_page
from jobqueue.api.serializers import (
    CancelSerializer,
    JobDetailSerializer,
    JobSerializer,
    JobSubmitSerializer,
    StrictSerializer,
)
from jobqueue.cancellation import cancel_job
from jobqueue.delegation import complete_delegated
from jobqueue.eligibility import explain
from jobqueue.models import Job, JobStatus
from jobqueue.stats import TIMEFRAMES, job_stats
from jobqueue.submission import submit_job


class StatsQuerySerializer(serializers.Serializer):
    timeframe = serializers.ChoiceField(choices=sorted(TIMEFRAMES), default="day")


class JobCollectionView(APIView):
    @extend_schema(request=JobSubmitSerializer, responses={201: JobSerializer, 200: JobSerializer})
    def post(self, request: Request) -> Response:
        submission = JobSubmitSerializer(data=request.data)
        submission.is_valid(raise_exception=True)
        job, created = submit_job(submission.to_job_request(), request.auth, request.correlation_id)
        return Response(
            {
                "success": True,
                "job_id": str(job.id),
                "status": job.status,
                "created_at": job.created_at,
                "created": created,
                "message": "Job submitted successfully" if created else "Job already submitted with this key",
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=filter_parameters(JobFilter),
        responses=JobSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = read_page(request)
        jobs = filter_or_400(JobFilter, request.query_params, Job.objects.order_by("-created_at"))
        return page_response("jobs", jobs, JobSerializer, page)


class JobDetailView(APIView):
    @extend_schema(responses=JobDetailSerializer)
    def get(self, request: Request, job_id) -> Response:
        job = get_object_or_404(Job.objects.prefetch_related("executions"), pk=job_id)
        body = JobDetailSerializer(job).data
        if job.status == JobStatus.PENDING:
            body["eligibility"] = explain(job)  # "no eligible worker", and which requirement, if so
        return Response({"success": True, "job": body})

    @extend_schema(request=CancelSerializer, responses=JobSerializer)
    def delete(self, request: Request, job_id) -> Response:
        return _cancel(request, job_id)


class DelegatedErrorSerializer(StrictSerializer):
    code = serializers.CharField(max_length=100, default="DELEGATED_FAILURE")
    message = serializers.CharField(max_length=2000)
    # Permanent unless said otherwise: the client knows whether trying again could help.
    error_class = serializers.ChoiceField(
        choices=["permanent", "transient"], default="permanent", source="class"
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and "class" in data:
            data = {**{k: v for k, v in data.items() if k != "class"}, "error_class": data["class"]}
        return super().to_internal_value(data)


class DelegatedResultSerializer(StrictSerializer):
    result = serializers.JSONField(required=False, help_text="The job's result.")
    error = DelegatedErrorSerializer(required=False, help_text="Or why it failed.")

    def validate(self, attrs):
        if ("result" in attrs) == ("error" in attrs):
            raise serializers.ValidationError("send either result or error", code="result_or_error")
        return attrs


class JobResultView(APIView):
    @extend_schema(request=DelegatedResultSerializer, responses=JobSerializer)
    def post(self, request: Request, job_id) -> Response:
        """Complete (or fail) a pending job of a type no worker runs: delegated work, by a delegate key."""
        body = DelegatedResultSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = complete_delegated(job_id, request.auth, **body.validated_data)
        return Response(
            {"success": True, "job_id": str(job.id), "status": job.status, "job": JobSerializer(job).data}
        )


class JobCancelView(APIView):
    @extend_schema(request=CancelSerializer, responses=JobSerializer)
    def post(self, request: Request, job_id) -> Response:
        return _cancel(request, job_id)


def _cancel(request: Request, job_id) -> Response:
    body = CancelSerializer(data=request.data or {})
    body.is_valid(raise_exception=True)
    job = cancel_job(job_id, body.validated_data.get("reason", ""))
    return Response(
        {
            "success": True,
            "job_id": str(job.id),
            "status": job.status,
            "cancel_requested": job.cancel_requested_at is not None,
            "job": JobSerializer(job).data,
        },
        status=status.HTTP_200_OK if job.is_terminal else status.HTTP_202_ACCEPTED,
    )


class JobStatsView(APIView):
    @extend_schema(parameters=[StatsQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response({"success": True, **job_stats(query.validated_data["timeframe"])})
