"""The admin API: /api/tenants and /api/keys (admin keys only: `accounts.auth.AdminsOnly`)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.serializers import ApiKeyCreateSerializer, ApiKeySerializer, TenantSerializer
from accounts.auth import AdminsOnly, OperatorsOnly, api_key_of
from accounts.models import ApiKey, Tenant
from core.api.pagination import PAGE_PARAMETERS, page_response, read_page
from core.api.schema import envelope, page
from core.db import INT_MAX
from core.errors import Conflict


class OwnKeyNotRevoked(Conflict):
    """A key cannot revoke itself (its holder would be locked out); use another admin key."""

    code = "cannot_revoke_own_key"


TENANT = envelope("TenantEnvelope", tenant=TenantSerializer())
API_KEY = envelope("ApiKeyEnvelope", api_key=ApiKeySerializer())


class AdminView(APIView):
    permission_classes = [*APIView.permission_classes, AdminsOnly]


class OperatorView(APIView):
    """A view for operators and admins only (the fleet, its credentials, integrations' health)."""

    permission_classes = [*APIView.permission_classes, OperatorsOnly]


def _taken(field: str, what: str) -> serializers.ValidationError:
    """A concurrent create took the unique name after validation looked."""
    return serializers.ValidationError(
        {field: [ErrorDetail(f"{what} with this name already exists", "unique")]}
    )


class TenantCollectionView(AdminView):
    @extend_schema(
        operation_id="api_tenants_list",
        parameters=PAGE_PARAMETERS,
        responses=page("TenantPage", "tenants", TenantSerializer),
    )
    def get(self, request: Request) -> Response:
        return page_response("tenants", Tenant.objects.order_by("id"), TenantSerializer, read_page(request))

    @extend_schema(request=TenantSerializer, responses={201: TENANT})
    def post(self, request: Request) -> Response:
        tenant = _saved(TenantSerializer(data=request.data))
        return Response(
            {"success": True, "tenant": TenantSerializer(tenant).data}, status=status.HTTP_201_CREATED
        )


class TenantDetailView(AdminView):
    @extend_schema(responses=TENANT)
    def get(self, request: Request, tenant_id: int) -> Response:
        return Response({"success": True, "tenant": TenantSerializer(_tenant(tenant_id)).data})

    @extend_schema(request=TenantSerializer, responses=TENANT)
    def patch(self, request: Request, tenant_id: int) -> Response:
        tenant = _saved(TenantSerializer(_tenant(tenant_id), data=request.data, partial=True))
        return Response({"success": True, "tenant": TenantSerializer(tenant).data})


class KeyQuerySerializer(serializers.Serializer[Any]):
    tenant_id = serializers.IntegerField(required=False, min_value=1, max_value=INT_MAX)


class KeyCollectionView(AdminView):
    @extend_schema(
        operation_id="api_keys_list",
        parameters=[KeyQuerySerializer, *PAGE_PARAMETERS],
        responses=page("ApiKeyPage", "keys", ApiKeySerializer),
    )
    def get(self, request: Request) -> Response:
        query = KeyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        keys = ApiKey.objects.order_by("id")
        if "tenant_id" in query.validated_data:
            keys = keys.filter(tenant_id=query.validated_data["tenant_id"])
        return page_response("keys", keys, ApiKeySerializer, read_page(request))

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={
            201: envelope(
                "ApiKeyIssued",
                api_key=ApiKeySerializer(),
                key=serializers.CharField(help_text="The key itself: shown this once, never again."),
            )
        },
    )
    def post(self, request: Request) -> Response:
        """A new key; the answer's `key` is the only time it is shown (only its hash is stored)."""
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                api_key, raw_key = body.issue(api_key_of(request))
        except IntegrityError as exc:
            raise _taken("name", "an API key") from exc
        return Response(
            {"success": True, "api_key": ApiKeySerializer(api_key).data, "key": raw_key},
            status=status.HTTP_201_CREATED,
        )


class KeyDetailView(AdminView):
    @extend_schema(responses=API_KEY)
    def get(self, request: Request, key_id: int) -> Response:
        return Response({"success": True, "api_key": ApiKeySerializer(_key(key_id)).data})


class KeyRevokeView(AdminView):
    @extend_schema(request=None, responses=API_KEY)
    def post(self, request: Request, key_id: int) -> Response:
        """Refused from now on, and its open WebSockets closed within seconds; the row stays."""
        api_key = _key(key_id)
        if api_key.pk == api_key_of(request).pk:
            raise OwnKeyNotRevoked(field="key_id")
        if api_key.revoked_at is None:
            api_key.revoke()
        return Response({"success": True, "api_key": ApiKeySerializer(api_key).data})


def _saved(body: TenantSerializer) -> Tenant:
    body.is_valid(raise_exception=True)
    try:
        with transaction.atomic():
            tenant: Tenant = body.save()
    except IntegrityError as exc:
        raise _taken("name", "a tenant") from exc
    return tenant


def _tenant(tenant_id: int) -> Tenant:
    return get_object_or_404(Tenant, pk=tenant_id)


def _key(key_id: int) -> ApiKey:
    return get_object_or_404(ApiKey, pk=key_id)
