"""What the OpenAPI schema says the API answers, as it answers it: every body inside the seeds'
envelope — `{"success": true, <key>: <object>}`, pages with their `pagination`, and every error as
`{"success": false, "error": {code, message, field?, details}}` under each status it can have.

Views declare their answers with `envelope` and `page`; `document_errors` (a drf-spectacular
post-processing hook) adds the error answers to every operation, and marks `type` required for a job
(its aliases `service_required` and `job_type`, which the replaced system's clients send, deprecated)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from wire.json_types import JsonObject

if TYPE_CHECKING:  # drf-spectacular's schema machinery imports DRF's views: not at import time
    from drf_spectacular.generators import SchemaGenerator

ERROR_COMPONENT = "ErrorEnvelope"
# Every status an authenticated API operation can answer besides its own success statuses.
ERROR_STATUSES = {
    "400": "Bad input: the error names the field and a machine-readable code; nothing changed.",
    "401": "The x-api-key header is missing, unknown, revoked or expired.",
    "403": "This key's role may not do this (`operator_role_required`, `admin_role_required`).",
    "404": "No such thing, or another tenant's.",
    "409": "The request conflicts with the current state (or a quota is reached).",
    "413": "The body is over the size limit.",
    "429": "Too many requests: a rate or queued-jobs quota; see Retry-After.",
    "503": "The database is unavailable; see Retry-After.",
}
UNAUTHENTICATED_PATHS = ("/health", "/version")
# Request fields required although their serializer cannot say so (the replaced system's clients may
# send an alias instead, which the schema marks deprecated): component -> (field, its aliases).
REQUIRED_WITH_ALIASES = {"JobSubmitRequest": ("type", ["service_required", "job_type"])}


class PaginationSerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Exact up to API_COUNT_MAX, then that bound.")
    total_exact = serializers.BooleanField(help_text="False when there are more than `total`.")
    has_more = serializers.BooleanField()


class ErrorSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Machine-readable, e.g. validation_error, not_found.")
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The request field at fault, dotted.")
    details = serializers.DictField()


def envelope(name: str, **fields: serializers.Field[Any, Any, Any, Any]) -> serializers.Serializer[Any]:
    """`{"success": true, **fields}`, documented as the component `name`."""
    return inline_serializer(name, {"success": serializers.BooleanField(), **fields})


def page(name: str, key: str, item: type[serializers.BaseSerializer[Any]]) -> serializers.Serializer[Any]:
    """`{"success": true, <key>: [<item>...], "pagination": {...}}` (core.api.pagination)."""
    return envelope(name, **{key: item(many=True), "pagination": PaginationSerializer()})


def objects() -> serializers.ListField:
    """A list of free-form objects (rows the fleet views build)."""
    return serializers.ListField(child=serializers.DictField())


def document_errors(
    result: JsonObject, generator: SchemaGenerator, request: Request | None, public: bool
) -> JsonObject:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "details": {"type": "object", "additionalProperties": {}},
                },
                "required": ["code", "message"],
            },
        },
        "required": ["success", "error"],
    }
    error = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}}
    for path, operations in result.get("paths", {}).items():
        if path.startswith(UNAUTHENTICATED_PATHS):
            continue
        for operation in operations.values():
            for status, description in ERROR_STATUSES.items():
                operation["responses"].setdefault(status, {"description": description, **error})
    for name, (field, aliases) in REQUIRED_WITH_ALIASES.items():
        component = schemas[name]
        component["required"] = sorted({*component.get("required", []), field})
        for alias in aliases:
            component["properties"][alias]["deprecated"] = True
    return result
