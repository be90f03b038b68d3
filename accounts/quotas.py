"""Limits on how much a tenant keeps (webhook endpoints, schedules): creating one more than its quota
allows is a 409 naming the quota. (Job quotas, which meter a rate and a backlog: `jobqueue.quotas`.)"""

from __future__ import annotations

from accounts.models import Tenant
from core.errors import Conflict


class QuotaReached(Conflict):
    """The tenant has reached its quota."""

    code = "quota_reached"


def ensure_room_for_one_more(tenant: Tenant, quota: str, used: int) -> None:
    """Raise QuotaReached unless the tenant, holding `used`, may create one more (`quota`: one of
    accounts.models.QUOTAS)."""
    limit = tenant.quota(quota)
    if used >= limit:
        raise QuotaReached(f"this tenant may have at most {limit} ({quota})", quota=quota, limit=limit)
