"""`manage.py revoke_api_key NAME`: the key is refused from now on (its row stays, for the record)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key: every request with it is refused from now on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        api_key = ApiKey.objects.filter(name=name).first()
        if api_key is None:
            raise CommandError(f"no API key named {name!r}")
        api_key.revoke()
        self.stdout.write(f"revoked {api_key}")
