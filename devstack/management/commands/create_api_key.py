"""`manage.py create_api_key NAME [--tenant T] [--role R] [--expires-in-days N] [--delegate]`: create
an API key and print it (it is shown only this once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError
from django.utils import timezone

from accounts.models import DEFAULT_TENANT_NAME, ApiKey, Role, Tenant
from devstack.embedded import database_ready
from wire.json_types import JsonObject


class Command(BaseCommand):
    help = "Create an API key and print it once. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a unique name for the client using this key")
        parser.add_argument("--tenant", default=DEFAULT_TENANT_NAME, help="its tenant (created if new)")
        parser.add_argument("--role", choices=Role.values, default=Role.CLIENT)
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="refused after that; default never"
        )
        parser.add_argument(
            "--delegate",
            action="store_true",
            help="allow it to complete jobs of types no worker runs (POST /api/jobs/{id}/result)",
        )
        parser.add_argument(
            "--emprops",
            action="store_true",
            help="allow it to start workflows EmProps is told of (source emprops) and use collections",
        )

    def handle(self, *args: Any, name: str, delegate: bool = False, **options: Any) -> None:
        if options["expires_in_days"] is not None and options["expires_in_days"] < 1:
            raise CommandError("--expires-in-days must be at least 1")
        with database_ready():
            self._create(name, delegate, options)

    def _create(self, name: str, delegate: bool, options: JsonObject) -> None:
        days = options["expires_in_days"]
        try:
            _, raw_key = ApiKey.issue(
                name,
                tenant=Tenant.objects.get_or_create(name=options["tenant"])[0],
                role=options["role"],
                can_complete_delegated=delegate,
                speaks_for_emprops=options["emprops"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except IntegrityError as exc:
            raise CommandError(f"an API key named {name!r} already exists") from exc
        self.stdout.write(raw_key)
