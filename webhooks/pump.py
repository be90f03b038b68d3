"""The webhook pump: turns new events into deliveries and hands due deliveries to the queue."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from webhooks.delivery import dispatch_due
from webhooks.fanout import fan_out_once

logger = logging.getLogger(__name__)


def pump_once() -> int:
    """One pass; returns how much it did (events read plus deliveries dispatched)."""
    return fan_out_once() + dispatch_due()


def run_webhook_pump(stop: threading.Event) -> None:
    """Pump until `stop` is set, polling every WEBHOOK_PUMP_POLL_SECONDS when there is nothing to do."""
    while not stop.is_set():
        try:
            done = pump_once()
        except Exception:
            logger.exception("webhook pump pass failed; retrying")
            close_old_connections()
            done = 0
        if not done:
            stop.wait(settings.WEBHOOK_PUMP_POLL_SECONDS)
