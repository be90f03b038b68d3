"""Reading the event log through a named cursor: every consumer of the log (the live relay, the webhook
and EmProps pumps) reads through `consume_events`, so none can forget a step; the pumps run their
passes with `run_consumer`.

Events are read in (transaction id, event id) order, and only from transactions older than every
transaction still running (`pg_snapshot_xmin`), so no event can commit behind a cursor and be
skipped. One consumer of a name runs at a time (the cursor row is locked); a second waits its turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections, connection, transaction

from events.models import Event, EventRelayCursor

logger = logging.getLogger(__name__)

_VISIBLE_AFTER_CURSOR = f"""
    SELECT * FROM {Event._meta.db_table}
    WHERE (txid, id) > (%s, %s)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    ORDER BY txid, id
    LIMIT %s
"""


def consume_events(cursor_name: str, batch: int, handle: Callable[[list[Event]], object]) -> int:
    """Hand the next committed events after the named cursor to `handle`, then move the cursor past
    them, in one transaction; returns how many. Every consumer of the log reads through this.

    The cursor row is locked, so one consumer of a name runs at a time; events come in (transaction
    id, id) order, only from transactions older than every one still running, so none is skipped."""
    with transaction.atomic():
        EventRelayCursor.objects.bulk_create([EventRelayCursor(name=cursor_name)], ignore_conflicts=True)
        cursor = EventRelayCursor.objects.select_for_update().get(name=cursor_name)
        events = list(Event.objects.raw(_VISIBLE_AFTER_CURSOR, [cursor.last_txid, cursor.last_id, batch]))
        if not events:
            return 0
        handle(events)
        last = events[-1]
        EventRelayCursor.objects.filter(name=cursor_name).update(last_txid=last.txid, last_id=last.id)
        return len(events)


def run_consumer(
    name: str,
    one_pass: Callable[[], int],
    idle_seconds: Callable[[], float],
    poll_seconds: float,
    stop: threading.Event,
    wake: threading.Event | None = None,
) -> None:
    """Run a consumer's passes until `stop` is set: the next at once while a pass did something, else
    when `wake` is set (events committed) or after `idle_seconds()`. A pass that fails is logged and
    tried again after `poll_seconds`, with fresh database connections."""
    wake = wake or threading.Event()
    while not stop.is_set():
        wake.clear()
        try:
            idle = 0.0 if one_pass() else idle_seconds()
        except Exception:
            logger.exception("%s pass failed; retrying", name)
            close_old_connections()
            idle = poll_seconds
        if idle:
            wake.wait(idle)


def backlogs(at_most: int) -> dict[str, int]:
    """Events each cursor has not passed yet, by cursor name (counted up to `at_most`)."""
    table = Event._meta.db_table
    counts = {}
    with connection.cursor() as cursor:
        for name, last_txid, last_id in EventRelayCursor.objects.values_list("name", "last_txid", "last_id"):
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE (txid, id) > (%s, %s) LIMIT %s) behind",
                [last_txid, last_id, at_most],
            )
            counts[name] = int(cursor.fetchone()[0])
    return counts


def oldest_unpassed_at(look_at: int = 1000) -> datetime | None:
    """When the oldest event that some cursor has not passed yet was recorded (None: every cursor is
    at the end). Retention keeps everything from then on: consumers may still read it or its rows.
    Looks at the first `look_at` unpassed events in log order, where the oldest is."""
    slowest = (
        EventRelayCursor.objects.order_by("last_txid", "last_id").values_list("last_txid", "last_id").first()
    )
    if slowest is None:  # no consumer has ever read the log
        return None
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(created_at) FROM (SELECT created_at FROM {table} WHERE (txid, id) > (%s, %s) "
            "ORDER BY txid, id LIMIT %s) unpassed",
            [slowest[0], slowest[1], look_at],
        )
        row = cursor.fetchone()
    return row[0] if row else None
