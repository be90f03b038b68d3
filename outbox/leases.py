"""Who may send a message now: due messages are claimed under a lease with a fresh token, and only the
sender holding a message's current token may record its attempt. A sender that vanished loses the
message when its lease runs out; whoever claims it next holds a new token, so a late outcome from the
vanished one changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.db import seconds_until_earliest
from outbox.models import PENDING, OutboxMessage

# statement_timestamp(), as Django's Now() writes next_attempt_at: a row made earlier in the caller's
# transaction is due (now() would be the transaction's start, before it).
_CLAIM_DUE = """
    UPDATE {table}
    SET lease_token = gen_random_uuid(), leased_until = statement_timestamp() + make_interval(secs => %s)
    WHERE id IN (
        SELECT id FROM {table}
        WHERE status = 'pending' AND next_attempt_at <= statement_timestamp()
          AND (leased_until IS NULL OR leased_until < statement_timestamp())
        ORDER BY next_attempt_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, lease_token
"""


def claim_due(model: type[OutboxMessage], limit: int, lease_seconds: float) -> list[tuple[int, uuid.UUID]]:
    """Lease up to `limit` due messages (oldest due first; ones another sender is claiming are
    skipped, not waited for): their ids and tokens."""
    statement = _CLAIM_DUE.format(table=connection.ops.quote_name(model._meta.db_table))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [lease_seconds, limit])
        return list(cursor.fetchall())


def release(model: type[OutboxMessage], message_ids: Sequence[int]) -> None:
    """Give claimed messages back unsent (their sender could not start): due again at once."""
    model._default_manager.filter(pk__in=message_ids, status=PENDING).update(
        lease_token=None, leased_until=None
    )


def take_over(
    model: type[OutboxMessage], message_id: int, token: uuid.UUID | str, lease_seconds: float
) -> uuid.UUID | None:
    """Trade a claim's token for a new one and a lease of `lease_seconds`: a sender handed a claimed
    message (by a queue that may deliver twice) makes it its own. None: the token was spent already."""
    own = uuid.uuid4()
    until = timezone.now() + timedelta(seconds=lease_seconds)
    taken = model._default_manager.filter(pk=message_id, lease_token=token, status=PENDING).update(
        lease_token=own, leased_until=until
    )
    return own if taken else None


def seconds_until_next_due(model: type[OutboxMessage], at_most: float) -> float:
    """How long until the next message is due (0 if one is), capped at `at_most`; one being sent now
    (leased) is not due, or a pump would spin on it."""
    waiting = model._default_manager.filter(status=PENDING).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=timezone.now())
    )
    return seconds_until_earliest(waiting, "next_attempt_at", at_most)
