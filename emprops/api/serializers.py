"""EmProps notifications and the miniapp's attestation, as the API shows and takes them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import StrictSerializer
from emprops.models import EmpropsAttempt, EmpropsNotification, NotificationStatus


class EmpropsAttemptSerializer(serializers.ModelSerializer[EmpropsAttempt]):
    class Meta:
        model = EmpropsAttempt
        fields = ["number", "started_at", "latency_ms", "status_code", "error", "succeeded"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer[EmpropsNotification]):
    workflow_id = serializers.CharField(source="workflow.workflow_id", read_only=True)
    notified_at = serializers.DateTimeField(source="delivered_at", read_only=True, allow_null=True)

    class Meta:
        model = EmpropsNotification
        fields = [
            "id", "workflow_id", "event_id", "outcome", "status", "attempt_count", "redelivery_count",
            "next_attempt_at", "last_error", "created_at", "notified_at", "dead_letter_reason",
            "dead_lettered_at",
        ]  # fmt: skip
        read_only_fields = fields


class NotificationDetailSerializer(NotificationSerializer):
    attempts = EmpropsAttemptSerializer(many=True, read_only=True)

    class Meta(NotificationSerializer.Meta):
        fields = [*NotificationSerializer.Meta.fields, "attempts"]
        read_only_fields = fields


class NotificationQuerySerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=NotificationStatus.choices, required=False)


class UserNotifiedSerializer(StrictSerializer):
    workflow_id = serializers.CharField(max_length=100)
    user_id = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    channel = serializers.CharField(max_length=50, required=False, default="", allow_blank=True)


class CountsSerializer(serializers.Serializer[Any]):
    pending = serializers.IntegerField()
    retrying = serializers.IntegerField()
    notified = serializers.IntegerField()
    dead_lettered = serializers.IntegerField()


class CollectionDefinitionSerializer(StrictSerializer):
    """A collection's definition as EmProps keeps it: the steps of the workflow that generates it
    (checked as any workflow's steps) and its variables."""

    steps = serializers.ListField(child=serializers.DictField(), min_length=1)
    variables = serializers.DictField(required=False)


class CollectionCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    generate = serializers.BooleanField(default=False, help_text="Also start its first generation here.")
    priority = serializers.IntegerField(min_value=0, max_value=100, required=False)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # EmProps calls the definition `data`, which as a class attribute would hide `Serializer.data`.
        return {**super().get_fields(), "data": CollectionDefinitionSerializer()}


class GenerationSerializer(StrictSerializer):
    priority = serializers.IntegerField(min_value=0, max_value=100, required=False)
