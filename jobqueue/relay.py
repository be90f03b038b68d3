"""The event relay: publishes each committed event to live subscribers (Channels groups), in order,
at least once. Consumers are idempotent by event id.

Events are read in (transaction id, event id) order, and only from transactions older than every
transaction still running (`pg_snapshot_xmin`), so no event can commit behind the cursor and be
skipped. One relay publishes at a time (the cursor row is locked); a second one waits its turn.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from jobqueue.models import Event, EventRelayCursor

logger = logging.getLogger(__name__)

CURSOR_NAME = "live"
ALL_EVENTS_GROUP = "events.all"

_VISIBLE_AFTER_CURSOR = """
    SELECT * FROM jobqueue_event
    WHERE (txid, id) > (%s, %s)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    ORDER BY txid, id
    LIMIT %s
"""


def group_for(kind: str, entity_id: Any) -> str:
    """A Channels group name for one job, workflow, machine or worker (ids may hold any character)."""
    digest = hashlib.sha256(str(entity_id).encode()).hexdigest()[:40]
    return f"events.{kind}.{digest}"


def groups_of(event: Event) -> list[str]:
    groups = [ALL_EVENTS_GROUP]
    for kind, entity_id in (
        ("job", event.job_id),
        ("workflow", event.workflow_id),
        ("machine", event.machine_id),
        ("worker", event.worker_id),
    ):
        if entity_id:
            groups.append(group_for(kind, entity_id))
    return groups


def event_message(event: Event) -> dict[str, Any]:
    """The event as subscribers get it (the shape of GET /api/events)."""
    from jobqueue.api.events import EventSerializer

    return dict(EventSerializer(event).data)


def relay_once(batch: int | None = None) -> int:
    """Publish the next committed events; returns how many."""
    return consume_events(CURSOR_NAME, batch or settings.EVENT_RELAY_BATCH, _publish_events)


def _publish_events(events: list[Event]) -> None:
    deliveries = []
    for event in sorted(events, key=lambda e: e.id):  # one job's events in the order they happened
        message = {"type": "event.message", "event": event_message(event)}
        deliveries += [(group, message) for group in groups_of(event)]
    async_to_sync(_publish)(deliveries)


def consume_events(cursor_name: str, batch: int, handle: Callable[[list[Event]], None]) -> int:
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


async def _publish(deliveries: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    for group, message in deliveries:
        await layer.group_send(group, message)


def run_relay(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Relay until `stop` is set: at once when `wake` is set (events committed), else every
    EVENT_RELAY_POLL_SECONDS."""
    wake = wake or threading.Event()
    while not stop.is_set():
        wake.clear()
        try:
            published = relay_once()
        except Exception:
            logger.exception("relaying events failed; retrying")
            published = 0
        if not published:
            wake.wait(settings.EVENT_RELAY_POLL_SECONDS)
