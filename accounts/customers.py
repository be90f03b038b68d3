"""Which tenant a customer id belongs to (`accounts.models.Customer`): the first to name it in a job
claims it; another tenant naming it gets a 404, as for any id of another tenant's."""

from __future__ import annotations

from collections.abc import Iterable

from accounts.models import Customer
from core.errors import NotFound


class CustomerNotFound(NotFound):
    """No such customer."""

    code = "customer_not_found"


def claim(tenant_id: int, customer_ids: Iterable[str | None]) -> None:
    """The customer ids belong to the tenant from now on (if they did not yet), or CustomerNotFound
    if any is another tenant's. Called in the transaction that creates the jobs naming them."""
    wanted = {customer_id for customer_id in customer_ids if customer_id}
    if not wanted:
        return
    owners = dict(Customer.objects.filter(customer_id__in=wanted).values_list("customer_id", "tenant_id"))
    new = wanted - set(owners)
    if new:
        Customer.objects.bulk_create(
            [Customer(customer_id=customer_id, tenant_id=tenant_id) for customer_id in sorted(new)],
            ignore_conflicts=True,  # claimed by a concurrent request meanwhile: read its owner below
        )
        owners.update(Customer.objects.filter(customer_id__in=new).values_list("customer_id", "tenant_id"))
    foreign = sorted(customer_id for customer_id, owner in owners.items() if owner != tenant_id)
    if foreign:
        raise CustomerNotFound(f"no such customer: {foreign[0]}", field="customer_id")
