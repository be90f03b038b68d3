"""Handing due deliveries to the delivery queue: each gets a fresh `dispatch_token` and a lease, and
only the queue message holding that token may run it. A lost message is replaced once its lease runs
out (WEBHOOK_DISPATCH_LEASE_SECONDS); a stale or duplicate one finds its token gone and does nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from core.db import seconds_until_earliest
from webhooks.models import DeliveryStatus, WebhookDelivery

_LEASE_DUE = """
    UPDATE webhooks_webhookdelivery
    SET dispatch_token = gen_random_uuid(), leased_until = now() + make_interval(secs => %s)
    WHERE id IN (
        SELECT id FROM webhooks_webhookdelivery
        WHERE status = 'pending' AND next_attempt_at <= now()
          AND (leased_until IS NULL OR leased_until < now())
        ORDER BY next_attempt_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, dispatch_token
"""
DELIVER_TASK = "webhooks.deliver"


def deliver_due(limit: int | None = None) -> int:
    """Lease the deliveries that are due and put one message per delivery on the delivery queue."""
    from core.celery_app import app

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _LEASE_DUE, [settings.WEBHOOK_DISPATCH_LEASE_SECONDS, limit or settings.WEBHOOK_PUMP_BATCH]
        )
        leased = cursor.fetchall()
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
        WebhookDelivery.objects.filter(id__in=[d for d, _ in leased], status=DeliveryStatus.PENDING).update(
            dispatch_token=None, leased_until=None
        )
        raise
    return len(leased)


def seconds_until_next_due(at_most: float) -> float:
    """How long until the next pending delivery is due (0 if one is), capped at `at_most`."""
    pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, leased_until__isnull=True)
    return seconds_until_earliest(pending, "next_attempt_at", at_most)
