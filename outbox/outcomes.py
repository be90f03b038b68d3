"""What an attempt's outcome does to its message: delivered, tried again at the next step of the
retry schedule (or later, if the receiver asked), or dead-lettered — recorded only by the sender
holding the message's lease token."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.utils import timezone

from outbox.models import DEAD_LETTERED, EXHAUSTED, PENDING, STATE_FIELDS, OutboxMessage
from outbox.schedule import RetryPolicy

M = TypeVar("M", bound=OutboxMessage)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What a transport's send said: delivered; or not, to be retried (after at least `retry_after`
    seconds, if the receiver said so); or not, never to be retried (`final_reason` says why)."""

    delivered: bool
    retry_after: float | None = None
    final_reason: str = ""


def settle(
    model: type[M],
    message_id: int,
    token: uuid.UUID,
    sent: Sent,
    policy: RetryPolicy,
    started_at: datetime,
    **transport_fields: object,
) -> M | None:
    """Record an attempt's outcome on its (locked) message, with any fields of the transport's own;
    run it in the transaction that records the attempt. None: the message was leased again while
    this attempt ran (it is the newer sender's now) and nothing is written."""
    message = model._default_manager.select_for_update().filter(pk=message_id).first()
    if message is None or message.lease_token != token:
        logger.warning(
            "%s %s was leased again while an attempt ran: its outcome is dropped",
            model._meta.verbose_name,
            message_id,
        )
        return None
    now = timezone.now()
    message.attempt_count += 1
    message.last_attempt_at = started_at
    message.lease_token, message.leased_until = None, None
    if sent.delivered:
        message.status, message.delivered_at, message.next_attempt_at = model.DELIVERED, now, None
    else:
        delay = (
            None if sent.final_reason else policy.next_delay(message.attempts_in_schedule, sent.retry_after)
        )
        if delay is None:
            _mark_dead(message, sent.final_reason or EXHAUSTED, now)
        else:
            message.next_attempt_at = now + timedelta(seconds=delay)
    for name, value in transport_fields.items():
        setattr(message, name, value)
    message.save(update_fields=[*STATE_FIELDS, *transport_fields])
    return message


def dead_letter(model: type[OutboxMessage], message_id: int, reason: str) -> None:
    """Give a pending message up without an attempt (its receiver is gone)."""
    now = timezone.now()
    model._default_manager.filter(pk=message_id, status=PENDING).update(
        status=DEAD_LETTERED,
        dead_letter_reason=reason,
        dead_lettered_at=now,
        next_attempt_at=None,
        lease_token=None,
        leased_until=None,
    )


def postpone(model: type[OutboxMessage], message_id: int, seconds: float) -> None:
    """Not now (the receiver's rate limit): due again in `seconds`, the attempt not counted."""
    model._default_manager.filter(pk=message_id, status=PENDING).update(
        next_attempt_at=timezone.now() + timedelta(seconds=seconds), lease_token=None, leased_until=None
    )


def _mark_dead(message: OutboxMessage, reason: str, now: datetime) -> None:
    message.status, message.dead_letter_reason = DEAD_LETTERED, reason
    message.dead_lettered_at, message.next_attempt_at = now, None
