"""`manage.py probe`: exit 0 when this process kind could work (its database and broker answer), 1
otherwise. The health check of the compose services that serve no HTTP (lanes, beat, relay, workers)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.health import system_health


class Command(BaseCommand):
    help = "Exit 0 when the database and the broker answer (a container health check)."

    def handle(self, *args: object, **options: object) -> None:
        report = system_health()
        if not report["ready"]:
            failing = sorted(name for name, check in report["checks"].items() if not check["ok"])
            raise CommandError(f"unavailable: {', '.join(failing)}")
