"""What a key may reach: its own tenant's rows. Operators (and admins) also read every tenant's jobs,
workflows and dead letters (and run the fleet: `accounts.auth.OperatorsOnly`). Another tenant's row is answered as missing (404),
never as forbidden, so ids leak nothing."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

from accounts.models import ApiKey, Role

M = TypeVar("M", bound=Model)


def owned(queryset: QuerySet[M], api_key: ApiKey, tenant_field: str = "tenant") -> QuerySet[M]:
    """The rows `api_key` may change: its tenant's."""
    return queryset.filter(**{f"{tenant_field}_id": api_key.tenant_id})


def readable(queryset: QuerySet[M], api_key: ApiKey, tenant_field: str = "tenant") -> QuerySet[M]:
    """The rows `api_key` may read: its tenant's, or every tenant's for an operator."""
    return queryset if api_key.has_role(Role.OPERATOR) else owned(queryset, api_key, tenant_field)
