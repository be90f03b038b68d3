"""`manage.py relay_events`: the event log's consumers, until stopped, each in its own thread with its
own cursor, all woken when events commit. Which consumers run is a setting (`EVENT_CONSUMERS`: the live
relay and the webhook pump), so the event log knows nothing of the apps that read it."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from core.db import limit_sessions
from events.wakeup import EventWakeup


class Command(BaseCommand):
    help = "Run the event log's consumers: live subscribers, webhook deliveries (EVENT_CONSUMERS)."

    def handle(self, *args: Any, **options: Any) -> None:
        limit_sessions("control")
        stop = threading.Event()
        consumers = [(path, import_string(path), threading.Event()) for path in settings.EVENT_CONSUMERS]

        def shut_down(*_args: Any) -> None:
            stop.set()
            for _, _, wake in consumers:
                wake.set()

        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)
        EventWakeup(stop, [wake for _, _, wake in consumers]).start()
        threads = [
            threading.Thread(target=run, args=(stop, wake), name=path.rsplit(".", 1)[-1])
            for path, run, wake in consumers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
