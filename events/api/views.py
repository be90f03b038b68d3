"""The event log over HTTP: replay in order after a cursor."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import api_key_of
from accounts.scoping import readable
from core.api.schema import envelope
from core.api.serializers import StrictSerializer
from core.db import BIGINT_MAX
from events.models import Event
from events.serializers import EventSerializer
from events.types import EventType
from wire.json_types import JsonValue

REPLAY_LIMIT_MAX = 1000


class EventTypesField(serializers.CharField):
    """One event type or several, comma-separated."""

    def to_internal_value(self, data: JsonValue) -> JsonValue:  # a list of types
        types = [t.strip() for t in super().to_internal_value(data).split(",") if t.strip()]
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown event types: {', '.join(unknown)}", code="unknown_event_type"
            )
        return types


class ReplayQuerySerializer(StrictSerializer):
    after = serializers.IntegerField(
        min_value=0, max_value=BIGINT_MAX, default=0, help_text="the last event id you have"
    )
    type = EventTypesField(required=False)
    job_id = serializers.UUIDField(required=False)
    workflow_id = serializers.CharField(required=False, max_length=100)
    worker_id = serializers.CharField(required=False, max_length=200)
    limit = serializers.IntegerField(min_value=1, max_value=REPLAY_LIMIT_MAX, default=100)


class EventReplayView(APIView):
    @extend_schema(
        operation_id="api_events_list",
        parameters=[ReplayQuerySerializer],
        responses=envelope(
            "EventPage",
            events=EventSerializer(many=True),
            next_after=serializers.IntegerField(help_text="Pass it as `after` for the next page."),
            has_more=serializers.BooleanField(),
        ),
    )
    def get(self, request: Request) -> Response:
        """Events in order after `after`: a consumer that was away catches up, page by page."""
        query = ReplayQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        # The caller's tenant's events; an operator's: every tenant's and the fleet's own.
        visible = readable(Event.objects.all(), api_key_of(request))
        events = visible.filter(id__gt=params["after"]).order_by("id")
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
