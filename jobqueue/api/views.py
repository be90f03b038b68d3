"""Jobs API views: parse, call one domain function, shape the response."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.models import ApiKey
from accounts.scoping import owned, readable
from core.api.errors import validation_error_body
from core.api.filters import filter_or_400, filter_parameters
from core.api.middleware import correlation_id
from core.api.pagination import PAGE_PARAMETERS, page_body, page_response, read_page
from core.api.schema import ErrorSerializer, PaginationSerializer, envelope, page
from events.models import Event
from events.serializers import EventSerializer
from jobqueue.api.filters import JobFilter
from jobqueue.api.serializers import (
    CancelSerializer,
    JobBatchSerializer,
    JobExecutionSerializer,
    JobSerializer,
    JobSubmitSerializer,
    submitted_request,
)
from jobqueue.cancellation import cancel_job
from jobqueue.job_request import JobRequest
from jobqueue.models import Job
from jobqueue.quotas import admit_jobs
from jobqueue.stats import TIMEFRAMES, job_stats
from jobqueue.submission import submit_job, submit_jobs
from wire.json_types import JsonList, JsonObject, JsonValue

JOB_SUBMITTED = envelope(
    "JobSubmitted",
    job_id=serializers.UUIDField(),
    status=serializers.CharField(),
    created_at=serializers.DateTimeField(),
    created=serializers.BooleanField(help_text="False: already submitted with this idempotency key."),
    message=serializers.CharField(),
)
JOB_CANCELLED = envelope(
    "JobCancelled",
    job_id=serializers.UUIDField(),
    status=serializers.CharField(),
    cancel_requested=serializers.BooleanField(),
    job=JobSerializer(),
)


class JobBatchResultSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 created, 200 already submitted, 400 invalid.")
    job_id = serializers.UUIDField(required=False)
    job_status = serializers.CharField(required=False)
    created = serializers.BooleanField(required=False)
    error = ErrorSerializer(required=False)


JOB_BATCH_SUBMITTED = envelope(
    "JobBatchSubmitted",
    created=serializers.IntegerField(),
    existing=serializers.IntegerField(),
    invalid=serializers.IntegerField(),
    results=JobBatchResultSerializer(many=True),
)
JOB_STATS = envelope(
    "JobStats",
    timeframe=serializers.CharField(),
    since=serializers.DateTimeField(),
    total=serializers.IntegerField(),
    by_status=serializers.DictField(child=serializers.IntegerField()),
    by_type=serializers.DictField(child=serializers.DictField()),
)


class StatsQuerySerializer(serializers.Serializer[Any]):
    timeframe = serializers.ChoiceField(choices=sorted(TIMEFRAMES), default="day")


class JobCollectionView(APIView):
    @extend_schema(request=JobSubmitSerializer, responses={201: JOB_SUBMITTED, 200: JOB_SUBMITTED})
    def post(self, request: Request) -> Response:
        submission = JobSubmitSerializer(data=request.data)
        submission.is_valid(raise_exception=True)
        admit_jobs(api_key_of(request).tenant, 1)
        job, created = submit_job(submission.to_job_request(), api_key_of(request), correlation_id(request))
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
        operation_id="api_jobs_list",
        parameters=filter_parameters(JobFilter),
        responses=page("JobPage", "jobs", JobSerializer),
    )
    def get(self, request: Request) -> Response:
        page = read_page(request)
        visible = readable(Job.objects.all(), api_key_of(request))
        jobs = filter_or_400(JobFilter, request.query_params, visible.order_by("-created_at"))
        return page_response("jobs", jobs, JobSerializer, page)


class JobBatchView(APIView):
    @extend_schema(request=JobBatchSerializer, responses={201: JOB_BATCH_SUBMITTED, 200: JOB_BATCH_SUBMITTED})
    def post(self, request: Request) -> Response:
        """Submit up to JOB_BATCH_MAX_JOBS jobs in one transaction and one dispatch. Results come per
        job, in order: 201 created, 200 already submitted with that idempotency key, 400 invalid."""
        body = JobBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requests, invalid = _parse_submissions(body.validated_data["jobs"])
        if invalid and body.validated_data["atomic"]:
            raise serializers.ValidationError(
                {"jobs": {str(index): errors for index, errors in invalid.items()}}
            )
        valid = sorted(requests)
        if valid:
            admit_jobs(api_key_of(request).tenant, len(valid))
        created_jobs = submit_jobs([requests[i] for i in valid], api_key_of(request), correlation_id(request))
        submitted = dict(zip(valid, created_jobs, strict=True))
        results = [
            _batch_result(index, submitted.get(index), invalid.get(index))
            for index in range(len(body.validated_data["jobs"]))
        ]
        created = sum(1 for r in results if r["status"] == status.HTTP_201_CREATED)
        return Response(
            {
                "success": not invalid,
                "created": created,
                "existing": sum(1 for r in results if r["status"] == status.HTTP_200_OK),
                "invalid": len(invalid),
                "results": results,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _parse_submissions(items: JsonList) -> tuple[dict[int, JobRequest], dict[int, JsonValue]]:
    """Each item checked on its own, by one serializer (a serializer per item costs ~20x more), into
    the valid ones' requests and the invalid ones' errors, by index."""
    parser = JobSubmitSerializer()
    requests: dict[int, JobRequest] = {}
    invalid: dict[int, JsonValue] = {}
    for index, item in enumerate(items):
        try:
            requests[index] = submitted_request(parser.run_validation(item))
        except serializers.ValidationError as exc:
            invalid[index] = exc.detail
    return requests, invalid


def _batch_result(index: int, submitted: tuple[Job, bool] | None, errors: JsonValue) -> JsonObject:
    if submitted is None:
        return {"index": index, "status": status.HTTP_400_BAD_REQUEST, "error": validation_error_body(errors)}
    job, created = submitted
    return {
        "index": index,
        "status": status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        "job_id": str(job.id),
        "job_status": job.status,
        "created": created,
    }


class JobCancelView(APIView):
    @extend_schema(request=CancelSerializer, responses={200: JOB_CANCELLED, 202: JOB_CANCELLED})
    def post(self, request: Request, job_id: UUID) -> Response:
        return cancel_response(request, job_id)


def cancel_response(request: Request, job_id: UUID) -> Response:
    """Cancel the job and answer with it (DELETE /api/jobs/{id} and POST …/cancel)."""
    body = CancelSerializer(data=request.data or {})
    body.is_valid(raise_exception=True)
    get_object_or_404(owned(Job.objects.all(), api_key_of(request)), pk=job_id)
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


class StatsView(APIView):
    """Counts and rates over `timeframe` (hour, day, week); subclasses say of what."""

    def stats(self, timeframe: str, api_key: ApiKey) -> JsonObject:
        raise NotImplementedError

    @extend_schema(parameters=[StatsQuerySerializer], responses=JOB_STATS)
    def get(self, request: Request) -> Response:
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            {"success": True, **self.stats(query.validated_data["timeframe"], api_key_of(request))}
        )


class JobStatsView(StatsView):
    def stats(self, timeframe: str, api_key: ApiKey) -> JsonObject:
        return job_stats(timeframe, readable(Job.objects.all(), api_key))


class JobTimelineView(APIView):
    @extend_schema(
        operation_id="api_jobs_events_list",
        parameters=PAGE_PARAMETERS,
        responses=envelope(
            "JobTimeline",
            job_id=serializers.UUIDField(),
            status=serializers.CharField(),
            events=EventSerializer(many=True),
            pagination=PaginationSerializer(),
            attempts=JobExecutionSerializer(many=True),
        ),
    )
    def get(self, request: Request, job_id: UUID) -> Response:
        """Everything that happened to one job, its events a page at a time (oldest first), and each
        attempt's worker, error and timings."""
        page = read_page(request)
        job = get_object_or_404(readable(Job.objects.all(), api_key_of(request)), pk=job_id)
        events = Event.objects.filter(job_id=job.pk).order_by("id")
        return Response(
            {
                "success": True,
                "job_id": str(job.pk),
                "status": job.status,
                **page_body("events", events, lambda rows: EventSerializer(rows, many=True).data, page),
                "attempts": JobExecutionSerializer(job.executions.order_by("attempt"), many=True).data,
            }
        )
