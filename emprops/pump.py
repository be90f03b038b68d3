"""The EmProps pump, one of the relay's event consumers (settings.EVENT_CONSUMERS): turns workflow
endings into notifications (through its own cursor) and sends the due ones."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from emprops.notifications import notify_due, record_endings, seconds_until_next_due
from events.cursors import consume_events

logger = logging.getLogger(__name__)

CURSOR = "emprops"


def pump_once() -> int:
    return consume_events(CURSOR, settings.EMPROPS_NOTIFY_BATCH, record_endings) + notify_due()


def run_emprops_pump(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Pump until `stop` is set: at once when `wake` is set (events committed), when the next
    notification is due, and at least every EMPROPS_PUMP_POLL_SECONDS."""
    wake = wake or threading.Event()
    while not stop.is_set():
        wake.clear()
        try:
            done = pump_once()
            idle = 0.0 if done else seconds_until_next_due(settings.EMPROPS_PUMP_POLL_SECONDS)
        except Exception:
            logger.exception("EmProps pump pass failed; retrying")
            close_old_connections()
            idle = settings.EMPROPS_PUMP_POLL_SECONDS
        if idle:
            wake.wait(idle)
