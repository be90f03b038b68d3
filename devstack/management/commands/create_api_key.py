"""`manage.py create_api_key NAME`: create an API key and print it (it is shown only this once)."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, connections

from accounts.models import ApiKey
from devstack.embedded import running_postgres


class Command(BaseCommand):
    help = "Create an API key and print it once. Only its hash is stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="a unique name for the client using this key")
        parser.add_argument(
            "--delegate",
            action="store_true",
            help="allow it to complete jobs of types no worker runs (POST /api/jobs/{id}/result)",
        )

    def handle(self, *args, name: str, delegate: bool = False, **options) -> None:
        if not settings.USES_EMBEDDED_POSTGRES:
            self._create(name, delegate)
            return
        # Works whether or not the embedded stack is running: start its Postgres for this command if needed.
        with running_postgres(settings.DATA_DIR, settings.EMBEDDED_PG_PORT) as started:
            try:
                if started is not None:
                    call_command("migrate", interactive=False, verbosity=0)
                self._create(name, delegate)
            finally:
                connections.close_all()

    def _create(self, name: str, delegate: bool) -> None:
        try:
            _, raw_key = ApiKey.issue(name, can_complete_delegated=delegate)
        except IntegrityError as exc:
            raise CommandError(f"an API key named {name!r} already exists") from exc
        self.stdout.write(raw_key)
