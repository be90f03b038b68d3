"""An operator's second chance for a finished message, and how a transport's messages stand."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from outbox.models import DEAD_LETTERED, PENDING, STATE_FIELDS, OutboxMessage

M = TypeVar("M", bound=OutboxMessage)


def redeliver(messages: QuerySet[M], message_id: int, still_pending: Callable[[], Exception]) -> M:
    """Send a delivered or dead-lettered message (one of `messages`) again; `still_pending()` is
    raised for one that is still being sent."""
    with transaction.atomic():
        message = messages.select_for_update().get(pk=message_id)
        if message.status == PENDING:
            raise still_pending()
        restart(message)
    return message


def redeliver_each(messages: QuerySet[M], limit: int | None = None) -> int:
    """Send the finished ones of `messages` again, up to `limit` (each in its own transaction; one
    another operator is redelivering now is skipped); returns how many."""
    finished = messages.exclude(status=PENDING)
    redelivered = 0
    for message_id in finished.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            message = finished.select_for_update(skip_locked=True).filter(pk=message_id).first()
            if message is not None:
                restart(message)
                redelivered += 1
    return redelivered


def restart(message: OutboxMessage) -> None:
    """Back to pending (a locked message), due now, on a fresh retry schedule; its payload unchanged."""
    message.status, message.dead_letter_reason, message.dead_lettered_at = PENDING, "", None
    message.schedule_start_attempt = message.attempt_count
    message.redelivery_count += 1
    message.next_attempt_at = timezone.now()
    message.lease_token, message.leased_until = None, None
    message.save(update_fields=STATE_FIELDS)


def counts(messages: QuerySet[M]) -> dict[str, int]:
    """`messages` by state: pending (not attempted yet), retrying, delivered (named as the transport
    names it: `succeeded`, `notified`), dead-lettered."""
    delivered = messages.model.DELIVERED
    tally = messages.aggregate(
        pending=Count("id", filter=Q(status=PENDING, attempt_count=0)),
        retrying=Count("id", filter=Q(status=PENDING, attempt_count__gt=0)),
        **{delivered: Count("id", filter=Q(status=delivered))},
        dead_lettered=Count("id", filter=Q(status=DEAD_LETTERED)),
    )
    return {name: int(value or 0) for name, value in tally.items()}
