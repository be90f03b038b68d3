"""`manage.py relay_events`: the event log's consumers, until stopped: the live relay (WebSocket
subscribers) and the webhook pump (deliveries), each in its own thread with its own cursor."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from jobqueue.relay import run_relay
from jobqueue.wakeup import EventWakeup
from webhooks.pump import run_webhook_pump


class Command(BaseCommand):
    help = "Publish committed events to live subscribers and turn them into webhook deliveries."

    def handle(self, *args, **options) -> None:
        stop, live_wake, webhook_wake = threading.Event(), threading.Event(), threading.Event()

        def shut_down(*_args) -> None:
            stop.set()
            live_wake.set()
            webhook_wake.set()

        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)
        EventWakeup(stop, [live_wake, webhook_wake]).start()
        webhooks = threading.Thread(target=run_webhook_pump, args=(stop, webhook_wake), name="webhook-pump")
        webhooks.start()
        run_relay(stop, live_wake)
        webhooks.join()
