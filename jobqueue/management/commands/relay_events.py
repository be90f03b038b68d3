"""`manage.py relay_events`: the event log's consumers, until stopped: the live relay (WebSocket
subscribers) and the webhook pump (deliveries), each in its own thread with its own cursor."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from jobqueue.relay import run_relay
from webhooks.pump import run_webhook_pump


class Command(BaseCommand):
    help = "Publish committed events to live subscribers and turn them into webhook deliveries."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        webhooks = threading.Thread(target=run_webhook_pump, args=(stop,), name="webhook-pump")
        webhooks.start()
        run_relay(stop)
        webhooks.join()
