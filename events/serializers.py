"""The one JSON shape of an event: the events API, the live relay and its sockets all send this."""

from __future__ import annotations

from rest_framework import serializers

from events.models import Event


class EventSerializer(serializers.ModelSerializer[Event]):
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
