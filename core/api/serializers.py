"""Serializer bases every API shares."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.ids import CLIENT_ID_HELP, is_client_id
from wire.json_types import JsonValue


class StrictSerializer(serializers.Serializer[Any]):
    """Rejects fields it does not know, so a typo is a 400 instead of a silently ignored option."""

    def to_internal_value(self, data: JsonValue) -> JsonValue:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: [serializers.ErrorDetail("unknown field", code="unknown_field")]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


class ClientIdField(serializers.CharField):
    """An id the client chooses that travels into URLs (`core.ids`)."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, **kwargs)

    def to_internal_value(self, data: JsonValue) -> str:
        value = super().to_internal_value(data)
        if not is_client_id(value, self.max_length or 0):
            raise serializers.ValidationError(f"use {CLIENT_ID_HELP}", code="invalid_format")
        return value
