"""Finding workflows by the id clients see. A workflow id is unique within its tenant only (clients
bring their own), so every look-up names the tenant, or prefers the caller's own."""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from operator import or_

from django.db.models import Case, Q, QuerySet, When

from accounts.models import ApiKey
from workflows.models import Workflow


def of_tenant(tenant_id: int, workflow_id: str) -> QuerySet[Workflow]:
    return Workflow.objects.filter(tenant_id=tenant_id, workflow_id=workflow_id)


def named(pairs: Iterable[tuple[int | None, str]]) -> Q:
    """Rows (workflows, jobs, events) naming one of these (tenant id, workflow id) pairs; none for none."""
    wanted = [Q(tenant_id=tenant_id, workflow_id=workflow_id) for tenant_id, workflow_id in set(pairs)]
    return reduce(or_, wanted) if wanted else Q(pk__in=[])


def of_pairs(pairs: Iterable[tuple[int | None, str]]) -> QuerySet[Workflow]:
    """The workflows named by (tenant id, workflow id) pairs, as events and jobs carry them."""
    return Workflow.objects.filter(named(pairs))


def seen_by(visible: QuerySet[Workflow], api_key: ApiKey, workflow_id: str) -> Workflow | None:
    """The workflow a key means by an id among those it may see: its own tenant's; for a key that
    reads across tenants and has none of that id, the oldest one."""
    own_first = Case(When(tenant_id=api_key.tenant_id, then=0), default=1)
    return visible.filter(workflow_id=workflow_id).order_by(own_first, "key").first()
