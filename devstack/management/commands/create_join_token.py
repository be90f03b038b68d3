"""`manage.py create_join_token NAME --pool P [--expires-in-hours H] [--customers a,b] [--max-workers N |
--any-number]`: a join token for GPU hosts (`python -m gpu_worker --join-token …`), printed once;
single-use unless told otherwise."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from devstack.embedded import database_ready
from devstack.management.tenant_option import add_tenant_option, customers_tenant_id
from machines import credentials

MAX_HOURS = 30 * 24


class Command(BaseCommand):
    help = "Create a join token for GPU workers of one pool and print it once. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a unique name, e.g. the hosts' provider and batch")
        parser.add_argument("--pool", required=True, help="the pool its workers serve")
        parser.add_argument("--expires-in-hours", type=float, default=1.0, help=f"at most {MAX_HOURS}")
        parser.add_argument("--customers", default="", help="comma-separated: its workers serve only these")
        add_tenant_option(parser)
        joins = parser.add_mutually_exclusive_group()
        joins.add_argument("--max-workers", type=int, default=1, help="how many may join with it (default 1)")
        joins.add_argument("--any-number", action="store_true", help="any number of workers may join with it")

    def handle(self, *args: object, name: str, pool: str, **options: object) -> None:
        hours = float(options["expires_in_hours"])  # type: ignore[arg-type]
        if not 0 < hours <= MAX_HOURS:
            raise CommandError(f"--expires-in-hours must be above 0 and at most {MAX_HOURS}")
        customers = [c.strip() for c in str(options["customers"]).split(",") if c.strip()]
        with database_ready():
            tenant_id = customers_tenant_id(options["tenant"])
            try:
                _, raw = credentials.create_join_token(
                    name,
                    pool,
                    expires_in=timedelta(hours=hours),
                    customers=customers,
                    customers_tenant_id=tenant_id,
                    max_workers=None if options["any_number"] else options["max_workers"],  # type: ignore[arg-type]
                )
            except IntegrityError as exc:
                raise CommandError(f"a join token named {name!r} already exists") from exc
        self.stdout.write(raw)
