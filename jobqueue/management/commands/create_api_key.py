"""`manage.py create_api_key NAME`: create an API key and print it (it is shown only this once)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from jobqueue.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key and print it once. Only its hash is stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="a unique name for the client using this key")

    def handle(self, *args, name: str, **options) -> None:
        try:
            _, raw_key = ApiKey.issue(name)
        except IntegrityError as exc:
            raise CommandError(f"an API key named {name!r} already exists") from exc
        self.stdout.write(raw_key)
