"""`manage.py relay_events`: publish committed events to live WebSocket subscribers until stopped."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from jobqueue.relay import run_relay


class Command(BaseCommand):
    help = "Publish committed events to live subscribers (Channels groups), in order, at least once."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_relay(stop)
