"""A tenant's customers (`accounts.models.Customer`): recorded as its jobs name them. Customer ids
are each tenant's own, so naming one never depends on, nor tells of, another tenant's."""

from __future__ import annotations

from collections.abc import Iterable

from accounts.models import Customer


def record(tenant_id: int, customer_ids: Iterable[str | None]) -> None:
    """The tenant's customers from now on include these (in the transaction that creates the jobs)."""
    named = sorted({customer_id for customer_id in customer_ids if customer_id})
    if named:
        Customer.objects.bulk_create(
            [Customer(customer_id=customer_id, tenant_id=tenant_id) for customer_id in named],
            ignore_conflicts=True,  # already recorded, or by a concurrent request
        )
