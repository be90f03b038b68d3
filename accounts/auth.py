"""`x-api-key` authentication against hashed keys."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from accounts.models import ApiKey, Role
from wire import logs

if TYPE_CHECKING:  # drf-spectacular's schema machinery imports DRF's views: not at import time
    from drf_spectacular.openapi import AutoSchema

HEADER = "x-api-key"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write on every request


def api_key_for(raw_key: str) -> ApiKey | None:
    """The usable key matching `raw_key` (active, not revoked, not expired; its last use noted, at
    most once a minute), or None."""
    # With its tenant: scoping and quotas read it on most requests.
    api_key = (
        ApiKey.objects.select_related("tenant")
        .filter(key_hash=ApiKey.hash_key(raw_key), is_active=True)
        .first()
    )
    now = timezone.now()
    if api_key is None or not api_key.is_usable(now):
        return None  # unknown, revoked or expired
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        raw_key = request.headers.get(HEADER)
        if not raw_key:
            return None
        api_key = api_key_for(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("invalid API key")
        logs.bind(tenant_id=api_key.tenant_id)  # the request's lines say whose they are
        return (api_key, api_key)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when the key is missing.
        return HEADER


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": HEADER}


def api_key_of(request: Request) -> ApiKey:
    """The key an authenticated API request came with (every API view requires one)."""
    if not isinstance(request.auth, ApiKey):
        raise exceptions.NotAuthenticated()
    return request.auth


class _RoleRequired(permissions.BasePermission):
    """Refuses keys whose role is below `role` with a 403 coded `<role>_role_required`."""

    role: Role
    needed_for: str

    def has_permission(self, request: Request, view: object) -> bool:
        api_key = request.auth
        if isinstance(api_key, ApiKey) and not api_key.has_role(self.role):
            raise exceptions.PermissionDenied(
                f"this key's role is {api_key.role}; {self.needed_for}", code=f"{self.role}_role_required"
            )
        return True


class OperatorsOnly(_RoleRequired):
    """The fleet's endpoints: machines, workers, pools, drain and resume."""

    role = Role.OPERATOR
    needed_for = "the fleet needs an operator or admin key"


class AdminsOnly(_RoleRequired):
    """Tenants and keys."""

    role = Role.ADMIN
    needed_for = "tenants and keys need an admin key"
