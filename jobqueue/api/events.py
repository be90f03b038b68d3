"""The event log over HTTP: replay in order after a cursor, and one job's whole timeline."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobqueue.api.serializers import JobExecutionSerializer, StrictSerializer
from jobqueue.events import EventType
from jobqueue.models import Event, Job

REPLAY_LIMIT_MAX = 1000


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "type",
            "version",
            "created_at",
            "job_id",
            "workflow_id",
            "machine_id",
            "worker_id",
            "correlation_id",
            "causation_id",
            "payload",
        ]


class EventTypesField(serializers.CharField):
    """One event type or several, comma-separated."""

    def to_internal_value(self, data):
        types = [t.strip() for t in super().to_internal_value(data).split(",") if t.strip()]
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown event types: {', '.join(unknown)}", code="unknown_event_type"
            )
        return types


class ReplayQuerySerializer(StrictSerializer):
    after = serializers.IntegerField(min_value=0, default=0, help_text="the last event id you have")
    type = EventTypesField(required=False)
    job_id = serializers.UUIDField(required=False)
    workflow_id = serializers.CharField(required=False, max_length=100)
    worker_id = serializers.CharField(required=False, max_length=200)
    limit = serializers.IntegerField(min_value=1, max_value=REPLAY_LIMIT_MAX, default=100)


class EventReplayView(APIView):
    @extend_schema(parameters=[ReplayQuerySerializer], responses=EventSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Events in order after `after`: a consumer that was away catches up, page by page."""
        query = ReplayQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        events = Event.objects.filter(id__gt=params["after"]).order_by("id")
        if "type" in params:
            events = events.filter(type__in=params["type"])
        for field in ("job_id", "workflow_id", "worker_id"):
            if field in params:
                events = events.filter(**{field: params[field]})
        page = list(events[: params["limit"] + 1])
        has_more = len(page) > params["limit"]
        page = page[: params["limit"]]
        return Response(
            {
                "success": True,
                "events": EventSerializer(page, many=True).data,
                "next_after": page[-1].id if page else params["after"],
                "has_more": has_more,
            }
        )


class JobTimelineView(APIView):
    @extend_schema(responses=EventSerializer(many=True))
    def get(self, request: Request, job_id) -> Response:
        """Everything that happened to one job, and each attempt's worker, error and timings."""
        job = get_object_or_404(Job, pk=job_id)
        return Response(
            {
                "success": True,
                "job_id": str(job.pk),
                "status": job.status,
                "events": EventSerializer(Event.objects.filter(job_id=job.pk).order_by("id"), many=True).data,
                "attempts": JobExecutionSerializer(job.executions.order_by("attempt"), many=True).data,
            }
        )
