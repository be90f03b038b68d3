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
    workflow_id = serializers.CharField(read_only=True)

    class Meta:
        model = EmpropsNotification
        fields = [
            "id", "workflow_id", "event_id", "outcome", "status", "attempt_count", "redelivery_count",
            "next_attempt_at", "last_error", "created_at", "notified_at", "dead_lettered_at",
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
