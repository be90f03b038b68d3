"""`manage.py create_worker_credential WORKER_ID --pool P [--customers a,b] [--machine-id M]`: a GPU
worker's credential made directly by an operator, without a join token — also the one way to give a
revoked worker id out again (joining refuses it). Prints the broker user and its secret, once: the
worker takes them as the user and password of its BROKER_URL."""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devstack.embedded import database_ready
from devstack.management.tenant_option import add_tenant_option, customers_tenant_id
from machines import credentials
from machines.models import WorkerCredential
from wire import names


class Command(BaseCommand):
    help = "Make a GPU worker's credential (a broker user of its own) and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_id")
        parser.add_argument("--pool", required=True, help="the pool the worker serves")
        parser.add_argument("--customers", default="", help="comma-separated: it serves only these")
        add_tenant_option(parser)
        parser.add_argument("--machine-id", default="", help="the machine it must describe itself on")

    def handle(self, *args: object, worker_id: str, pool: str, **options: object) -> None:
        if not re.match(names.WORKER_ID_PATTERN, worker_id):
            raise CommandError(f"a worker id matches {names.WORKER_ID_PATTERN}")
        customers = [c.strip() for c in str(options["customers"]).split(",") if c.strip()]
        with database_ready():
            if WorkerCredential.objects.filter(pk=worker_id, revoked_at=None).exists():
                raise CommandError(f"{worker_id} holds an active credential: revoke it first")
            tenant_id = customers_tenant_id(options["tenant"])
            _, secret = credentials.issue(
                worker_id, pool, customers, str(options["machine_id"]), customers_tenant_id=tenant_id
            )
        self.stdout.write(f"{names.broker_username(worker_id)} {secret}")
