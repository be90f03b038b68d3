"""`manage.py revoke_worker_credential WORKER_ID`: cut a GPU worker off (its broker user is deleted:
its connections close at once, and it exits); its attempts are recovered by the lease."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from machines import credentials
from machines.models import WorkerCredential


class Command(BaseCommand):
    help = "Revoke a GPU worker's credential (needs the broker running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_id")

    def handle(self, *args: object, worker_id: str, **options: object) -> None:
        credential = WorkerCredential.objects.filter(pk=worker_id).first()
        if credential is None:
            raise CommandError(f"no credential for worker {worker_id!r}")
        with transaction.atomic():
            credentials.revoke(credential)
        self.stdout.write(f"revoked {worker_id}")
