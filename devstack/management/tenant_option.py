"""`--tenant NAME`, for the commands that name customers (customer ids are each tenant's own)."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from accounts.models import Tenant


def add_tenant_option(parser: CommandParser) -> None:
    parser.add_argument(
        "--tenant",
        default=None,
        help="whose customers those are (a tenant's name); default: the default tenant",
    )


def customers_tenant_id(name: object) -> int | None:
    """The named tenant's id (None for no name: the default tenant's customers)."""
    if name is None:
        return None
    tenant_id = Tenant.objects.filter(name=str(name)).values_list("pk", flat=True).first()
    if tenant_id is None:
        raise CommandError(f"no tenant named {name!r}")
    return tenant_id
