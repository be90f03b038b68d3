"""What a key may reach: its own tenant's rows. Operators (and admins) also read every tenant's jobs,
workflows, dead letters and events, and requeue every tenant's dead letters (`recoverable`: putting
failed work back after a fleet outage is running the fleet); every other change is to the key's own
tenant's rows only (`owned`). The table of roles and actions is in docs/security.md; the fleet's own
endpoints are `accounts.auth.OperatorsOnly`. Another tenant's row is answered as missing (404), never
as forbidden, so ids leak nothing."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

from accounts.models import ApiKey, Role

M = TypeVar("M", bound=Model)


def owned(queryset: QuerySet[M], api_key: ApiKey, tenant_field: str = "tenant") -> QuerySet[M]:
    """The rows `api_key` may change: its tenant's."""
    return queryset.filter(**{f"{tenant_field}_id": api_key.tenant_id})


def reads_every_tenant(api_key: ApiKey) -> bool:
    return api_key.has_role(Role.OPERATOR)


def readable(queryset: QuerySet[M], api_key: ApiKey, tenant_field: str = "tenant") -> QuerySet[M]:
    """The rows `api_key` may read: its tenant's, or every tenant's for an operator."""
    return queryset if reads_every_tenant(api_key) else owned(queryset, api_key, tenant_field)


def recoverable(queryset: QuerySet[M], api_key: ApiKey, tenant_field: str = "tenant") -> QuerySet[M]:
    """The failed work `api_key` may put back (requeue): its tenant's, or every tenant's for an operator."""
    return readable(queryset, api_key, tenant_field)


def may_read(api_key: ApiKey, tenant_id: int | None) -> bool:
    """`readable` for one row already in hand (an event the relay pushed, say) whose tenant is
    `tenant_id` (none: the fleet's own, for operators only)."""
    return reads_every_tenant(api_key) or tenant_id == api_key.tenant_id
