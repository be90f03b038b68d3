"""What a GPU worker may say about itself, checked before anything is stored: its registration (the
self-description it also repeats with heartbeats) and its heartbeats' facts. GPU hosts are not
trusted, and one malformed description stored would break the fleet's dispatch for everyone (a
string where a list of customers belongs makes the eligibility SQL fail) or its recovery (a
malformed `seen_attempts`). A description that breaks these rules is refused whole (`Refused`)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers

NAME = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"  # ids and names: printable, no spaces, no quotes
MAX_NAMES = 500  # job types, capabilities, models, customers per list
MAX_SEEN_ATTEMPTS = 10_000
MAX_HEALTH_DETAIL = 2000
MAX_ID_LENGTH = 100
MAX_EPOCH_SECONDS = 2**33  # the year 2242: a timestamp Postgres can hold


class Refused(ValueError):
    """A worker's message that breaks the description's rules; the text says which field."""


def _names(max_length: int = 200) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=max_length), max_length=MAX_NAMES, required=False
    )


class HealthSerializer(serializers.Serializer[Any]):
    healthy = serializers.BooleanField(default=True)
    detail = serializers.CharField(max_length=MAX_HEALTH_DETAIL, required=False, allow_blank=True)


class DescriptionSerializer(serializers.Serializer[Any]):
    """A registration. Fields beyond these are kept as the worker's `info`, within the size limit."""

    worker_id = serializers.RegexField(NAME, max_length=200)
    instance_id = serializers.CharField(max_length=100)
    machine_id = serializers.RegexField(NAME, max_length=200)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True)
    pool = serializers.RegexField(NAME, max_length=100, required=False)
    job_types = _names()
    capabilities = _names()
    model_names = _names(500)
    customer_allowlist = _names()
    customer_denylist = _names()
    gpu_memory_gb = serializers.FloatField(min_value=0, max_value=100_000, required=False, allow_null=True)
    gpu_index = serializers.IntegerField(min_value=0, max_value=1024, required=False, allow_null=True)
    gpu_name = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    slots = serializers.IntegerField(min_value=1, max_value=256, required=False)
    health = HealthSerializer(required=False)
    telemetry = serializers.DictField(required=False)
    machine = serializers.DictField(required=False)


def checked_description(info: Any) -> dict[str, Any]:
    """The registration as sent, if it keeps every rule; else Refused."""
    return _checked(DescriptionSerializer, info)


def checked_beat(worker_id: Any, instance_id: Any, info: Any) -> dict[str, Any]:
    """A heartbeat's info as sent, if its own facts (attempts held, engine health, telemetry) keep
    every rule; else Refused. Checked by hand, not by a serializer: a fleet sends thousands a minute
    (the fleet lane's hot path). The description it repeats is checked only when a worker registers
    again from it (`checked_description`): most heartbeats never use it."""
    info = info or {}
    if not isinstance(worker_id, str) or not isinstance(instance_id, str) or not isinstance(info, dict):
        raise Refused("a heartbeat is a worker id, an instance id and an object")
    _check_size(info)
    seen = info.get("seen_attempts", [])
    if not isinstance(seen, list) or len(seen) > MAX_SEEN_ATTEMPTS or not all(map(_is_attempt, seen)):
        raise Refused(f"seen_attempts is a list of at most {MAX_SEEN_ATTEMPTS} [job id, attempt number]")
    health = info.get("health", {})
    if not isinstance(health, dict) or not isinstance(health.get("healthy", True), bool):
        raise Refused("health is an object whose healthy is a boolean")
    if not isinstance(health.get("detail", ""), str) or len(health.get("detail", "")) > MAX_HEALTH_DETAIL:
        raise Refused(f"health.detail is text of at most {MAX_HEALTH_DETAIL} characters")
    if not isinstance(info.get("telemetry", {}), dict):
        raise Refused("telemetry is an object")
    sent_at = info.get("sent_at", 0.0)
    if type(sent_at) not in (int, float) or not 0 <= sent_at < MAX_EPOCH_SECONDS:
        raise Refused("sent_at is a number of seconds since the epoch")
    return info


def _is_attempt(item: Any) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and len(item[0]) <= MAX_ID_LENGTH
        and type(item[1]) is int
    )


def _checked(serializer_class: type[serializers.Serializer[Any]], info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise Refused("a worker's description is a JSON object")
    _check_size(info)
    checked = serializer_class(data=info)
    if not checked.is_valid():
        raise Refused(json.dumps(checked.errors, default=str)[:500])
    return {**info, **checked.validated_data}  # the checked fields as checked, the rest as sent


def _check_size(info: dict[str, Any]) -> None:
    if len(json.dumps(info, default=str)) > settings.WORKER_DESCRIPTION_MAX_BYTES:
        raise Refused(f"a worker's description is at most {settings.WORKER_DESCRIPTION_MAX_BYTES} bytes")
