"""The EmProps pump, one of the relay's event consumers (settings.EVENT_CONSUMERS): turns workflow
endings into notifications (through its own cursor) and sends the due ones."""

from __future__ import annotations

import threading

from django.conf import settings

from emprops.notifications import notify_due, record_endings, seconds_until_next_due
from events.cursors import consume_events, run_consumer

CURSOR = "emprops"


def pump_once() -> int:
    return consume_events(CURSOR, settings.EMPROPS_NOTIFY_BATCH, record_endings) + notify_due()


def run_emprops_pump(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Pump until `stop` is set: at once when `wake` is set (events committed), when the next
    notification is due, and at least every EMPROPS_PUMP_POLL_SECONDS."""
    poll = settings.EMPROPS_PUMP_POLL_SECONDS
    run_consumer("EmProps pump", pump_once, lambda: seconds_until_next_due(poll), poll, stop, wake)
