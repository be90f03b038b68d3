"""Webhook API shapes. Secrets appear only in the answers that create them; header values never."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.api.serializers import StrictSerializer
from events.types import EventType
from webhooks import emp_dialect
from webhooks.fanout import FILTERS
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookFormat
from wire.json_types import JsonObject, JsonValue

# Set by the delivery itself: an endpoint's own headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-signature",
        "x-webhook-event",
        "x-webhook-id",
        "x-event-id",
    }
)
MAX_FILTER_VALUES = 100
MAX_HEADERS = 20


class EventTypesField(serializers.ListField):
    child = serializers.CharField(max_length=64)

    def to_internal_value(self, data: JsonValue) -> list[str]:
        # The replaced system's names (`complete_job`, …) are taken too, in ours.
        names = [emp_dialect.our_event_type(name) for name in super().to_internal_value(data)]
        unknown = sorted(set(names) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown event type(s) {', '.join(unknown)}; see docs/events.md", code="unknown_event_type"
            )
        return sorted(set(names))


class FiltersSerializer(StrictSerializer):
    job_types = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=MAX_FILTER_VALUES, required=False
    )
    priorities = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=100),
        max_length=MAX_FILTER_VALUES,
        required=False,
    )
    machine_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=MAX_FILTER_VALUES, required=False
    )
    worker_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=MAX_FILTER_VALUES, required=False
    )
    workflow_ids = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=MAX_FILTER_VALUES, required=False
    )

    def validate(self, attrs: JsonObject) -> JsonObject:
        assert set(attrs) <= set(FILTERS)  # one list of filter names: fanout.FILTERS
        return {name: values for name, values in attrs.items() if values}


class HeadersField(serializers.DictField):
    child = serializers.CharField(max_length=2000)

    def to_internal_value(self, data: JsonValue) -> dict[str, str]:
        headers = super().to_internal_value(data)
        if len(headers) > MAX_HEADERS:
            raise serializers.ValidationError(f"at most {MAX_HEADERS} headers", code="too_many_headers")
        reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise serializers.ValidationError(
                f"{', '.join(reserved)} is set by the delivery itself", code="reserved_header"
            )
        return headers


class EndpointWriteSerializer(StrictSerializer):
    url = serializers.URLField(max_length=2000)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    event_types = EventTypesField(required=False, help_text="Event types to deliver; empty or absent: all.")
    format = serializers.ChoiceField(
        choices=WebhookFormat.values,
        required=False,
        help_text="standard: Standard Webhooks (the default); emp: the replaced system's event names, "
        "envelope and X-Webhook-Signature, for receivers written against it.",
    )
    filters = FiltersSerializer(required=False)
    headers = HeadersField(required=False)
    rate_limit_per_second = serializers.IntegerField(
        min_value=1, max_value=10_000, required=False, allow_null=True
    )
    enabled = serializers.BooleanField(required=False)


class EndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    headers = serializers.SerializerMethodField(help_text="Header names; values are never shown.")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "format",
            "filters",
            "headers",
            "rate_limit_per_second",
            "enabled",
            "disabled_reason",
            "failing_since",
            "last_success_at",
            "last_failure_at",
            "secret_rotated_at",
            "created_at",
            "updated_at",
        ]

    def get_headers(self, endpoint: WebhookEndpoint) -> list[str]:
        return sorted(endpoint.headers)


class RotateSecretSerializer(StrictSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        default=settings.WEBHOOK_SECRET_OVERLAP_SECONDS,
        help_text="How long the previous secret keeps signing too.",
    )


class AttemptSerializer(serializers.ModelSerializer[WebhookAttempt]):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "started_at",
            "latency_ms",
            "status_code",
            "response_excerpt",
            "error",
            "succeeded",
            "next_attempt_at",
        ]


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint_id",
            "url",
            "event_id",
            "event_type",
            "message_id",
            "job_id",
            "workflow_id",
            "status",
            "dead_letter_reason",
            "attempt_count",
            "redelivery_count",
            "next_attempt_at",
            "created_at",
            "last_attempt_at",
            "delivered_at",
            "dead_lettered_at",
        ]


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = AttemptSerializer(many=True, read_only=True)
    payload = serializers.SerializerMethodField(help_text="The JSON body, as sent on every attempt.")

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempts"]

    def get_payload(self, delivery: WebhookDelivery) -> JsonObject:
        payload: JsonObject = json.loads(delivery.body)
        return payload


class DeliveryQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class BulkRedeliverSerializer(StrictSerializer):
    since = serializers.DateTimeField(help_text="Dead-lettered at or after this time.")
    endpoint_id = serializers.UUIDField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=10_000, default=1000)
