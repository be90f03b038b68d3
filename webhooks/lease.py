"""Handing due deliveries to the delivery queue: each is claimed under an outbox lease
(`outbox/leases.py`) and its message carries the lease's token, so only that message may run it. A
lost message is replaced once its lease runs out (WEBHOOK_DISPATCH_LEASE_SECONDS); a stale or duplicate
one finds its token gone and does nothing.
"""

from __future__ import annotations

from django.conf import settings

from outbox import leases
from webhooks.models import WebhookDelivery

DELIVER_TASK = "webhooks.deliver"


def deliver_due(limit: int | None = None) -> int:
    """Lease the deliveries that are due and put one message per delivery on the delivery queue."""
    from core.celery_app import app

    leased = leases.claim_due(
        WebhookDelivery, limit or settings.WEBHOOK_PUMP_BATCH, settings.WEBHOOK_DISPATCH_LEASE_SECONDS
    )
    if not leased:
        return 0
    try:
        with app.producer_or_acquire() as producer:
            for delivery_id, token in leased:
                app.send_task(
                    DELIVER_TASK, (delivery_id, str(token)), queue=settings.WEBHOOK_QUEUE, producer=producer
                )
    except Exception:
        # Unpublished (the broker is down): give the leases back so a later pass hands them out again.
        leases.release(WebhookDelivery, [delivery_id for delivery_id, _ in leased])
        raise
    return len(leased)


def seconds_until_next_due(at_most: float) -> float:
    """How long until the next pending delivery is due (0 if one is), capped at `at_most`."""
    return leases.seconds_until_next_due(WebhookDelivery, at_most)
