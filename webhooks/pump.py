"""The webhook pump: turns new events into deliveries and hands due deliveries to the queue."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from webhooks.fanout import fan_out_once
from webhooks.lease import dispatch_due, seconds_until_next_due

logger = logging.getLogger(__name__)


def pump_once() -> int:
    """One pass; returns how much it did (events read plus deliveries dispatched)."""
    return fan_out_once() + dispatch_due()


def run_webhook_pump(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Pump until `stop` is set: at once when `wake` is set (events committed), when the next
    delivery is due, and at least every WEBHOOK_PUMP_POLL_SECONDS."""
    wake = wake or threading.Event()
    while not stop.is_set():
        wake.clear()
        try:
            done = pump_once()
            idle = 0.0 if done else seconds_until_next_due(settings.WEBHOOK_PUMP_POLL_SECONDS)
        except Exception:
            logger.exception("webhook pump pass failed; retrying")
            close_old_connections()
            idle = settings.WEBHOOK_PUMP_POLL_SECONDS
        if idle:
            wake.wait(idle)
