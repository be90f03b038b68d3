"""Tenants and API keys as the admin API shows and takes them (never a key's hash; the key itself
only in the answer that created it)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from accounts.models import QUOTAS, ApiKey, Role, Tenant
from core.api.serializers import StrictSerializer
from core.db import INT_MAX
from wire.json_types import JsonObject

MAX_KEY_LIFETIME_DAYS = 3650
SCHEDULING = ("fair_share_weight", "max_running_jobs")
MAX_CONCURRENCY_LIMITS = 1000
CONCURRENCY_KEY_MAX_LENGTH = 200


class TenantSerializer(StrictSerializer, serializers.ModelSerializer[Tenant]):
    quotas = serializers.SerializerMethodField(help_text="The limits in force: its own, or the defaults.")
    concurrency_limits = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=INT_MAX),
        required=False,
        help_text="{concurrency_key: most of its jobs running at once}, for jobs naming no limit.",
    )

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "created_at",
            *QUOTAS,
            "quotas",
            *SCHEDULING,
            "concurrency_limits",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            **{name: {"max_value": INT_MAX} for name in QUOTAS},
            "fair_share_weight": {"min_value": 1, "max_value": 1000},
            "max_running_jobs": {"min_value": 1, "max_value": INT_MAX},
        }

    def get_quotas(self, tenant: Tenant) -> dict[str, int]:
        return {name: tenant.quota(name) for name in QUOTAS}

    def validate_concurrency_limits(self, limits: dict[str, int]) -> dict[str, int]:
        if len(limits) > MAX_CONCURRENCY_LIMITS:
            raise serializers.ValidationError(f"at most {MAX_CONCURRENCY_LIMITS} keys")
        if any(len(key) > CONCURRENCY_KEY_MAX_LENGTH for key in limits):
            raise serializers.ValidationError(f"a key is at most {CONCURRENCY_KEY_MAX_LENGTH} characters")
        return limits


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    tenant_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "tenant_id",
            "role",
            "prefix",
            "can_complete_delegated",
            "speaks_for_emprops",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    tenant_id = serializers.IntegerField(
        required=False, min_value=1, max_value=INT_MAX, help_text="Default: the calling key's tenant."
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.CLIENT)
    expires_in_days = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_KEY_LIFETIME_DAYS, help_text="Default: never."
    )
    can_complete_delegated = serializers.BooleanField(default=False)
    speaks_for_emprops = serializers.BooleanField(
        default=False, help_text="May start workflows EmProps is told of (source emprops)."
    )

    def validate_name(self, value: str) -> str:
        if ApiKey.objects.filter(name=value).exists():
            raise serializers.ValidationError("an API key with this name already exists", code="unique")
        return value

    def validate_tenant_id(self, value: int) -> int:
        if not Tenant.objects.filter(pk=value).exists():
            raise serializers.ValidationError("no such tenant", code="not_found")
        return value

    def issue(self, caller: ApiKey) -> tuple[ApiKey, str]:
        data: JsonObject = self.validated_data
        days = data.get("expires_in_days")
        return ApiKey.issue(
            data["name"],
            tenant=Tenant.objects.get(pk=data.get("tenant_id", caller.tenant_id)),
            role=data["role"],
            can_complete_delegated=data["can_complete_delegated"],
            speaks_for_emprops=data["speaks_for_emprops"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
