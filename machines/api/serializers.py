"""Join tokens and worker credentials as the operator API shows and takes them (never a hash; a
token or secret only in the answer that made it)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import Tenant
from core.api.serializers import StrictSerializer
from core.db import INT_MAX
from machines.models import JoinToken, WorkerCredential
from wire.bounds import NAME_PATTERN as NAME
from wire.names import WORKER_ID_PATTERN

MAX_JOIN_TOKEN_LIFETIME_S = 30 * 24 * 3600
DEFAULT_JOIN_TOKEN_LIFETIME_S = 3600


class JoinTokenSerializer(serializers.ModelSerializer[JoinToken]):
    customers_tenant_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = JoinToken
        fields = [
            "id", "name", "prefix", "pool", "customers", "customers_tenant_id", "max_workers", "joined",
            "created_at", "expires_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields


class JoinTokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    pool = serializers.RegexField(NAME, max_length=100)
    customers = serializers.ListField(
        child=serializers.RegexField(NAME, max_length=200), max_length=500, required=False, default=list
    )
    customers_tenant_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=INT_MAX,
        help_text="Whose customers these are (customer ids are each tenant's own); default: the calling key's.",
    )
    max_workers = serializers.IntegerField(
        min_value=1,
        max_value=1_000_000,
        default=1,
        allow_null=True,
        help_text="How many workers may join with it: one unless given; null for any number.",
    )
    expires_in_seconds = serializers.IntegerField(
        min_value=60, max_value=MAX_JOIN_TOKEN_LIFETIME_S, default=DEFAULT_JOIN_TOKEN_LIFETIME_S
    )

    def validate_customers_tenant_id(self, value: int) -> int:
        if not Tenant.objects.filter(pk=value).exists():
            raise serializers.ValidationError("no such tenant", code="not_found")
        return value

    def validate_name(self, name: str) -> str:
        if JoinToken.objects.filter(name=name).exists():
            raise serializers.ValidationError("a join token with this name already exists", "unique")
        return name


class WorkerCredentialSerializer(serializers.ModelSerializer[WorkerCredential]):
    join_token_id = serializers.IntegerField(read_only=True, allow_null=True)
    customers_tenant_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = WorkerCredential
        fields = [
            "worker_id", "join_token_id", "pool", "customers", "customers_tenant_id", "machine_id",
            "created_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields


class JoinRequestSerializer(StrictSerializer):
    worker_id = serializers.RegexField(WORKER_ID_PATTERN, max_length=100)
    machine_id = serializers.RegexField(NAME, max_length=200, required=False, default="")


class IssuedCredentialSerializer(serializers.Serializer[Any]):
    worker_id = serializers.CharField()
    pool = serializers.CharField()
    customers = serializers.ListField(child=serializers.CharField())
    broker_username = serializers.CharField()
    broker_password = serializers.CharField(help_text="Shown this once; also the worker's key.")
