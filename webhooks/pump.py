"""The webhook pump: turns new events into deliveries and hands due deliveries to the queue."""

from __future__ import annotations

import threading

from django.conf import settings

from events.cursors import run_consumer
from webhooks.fanout import fan_out_once
from webhooks.lease import deliver_due, seconds_until_next_due


def pump_once() -> int:
    """One pass; returns how much it did (events read plus deliveries dispatched)."""
    return fan_out_once() + deliver_due()


def run_webhook_pump(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Pump until `stop` is set: at once when `wake` is set (events committed), when the next
    delivery is due, and at least every WEBHOOK_PUMP_POLL_SECONDS."""
    poll = settings.WEBHOOK_PUMP_POLL_SECONDS
    run_consumer("webhook pump", pump_once, lambda: seconds_until_next_due(poll), poll, stop, wake)
