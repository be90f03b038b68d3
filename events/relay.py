"""The live relay: publishes each committed event to live subscribers (Channels groups), in order,
at least once, through its cursor (`events/cursors.py`). Subscribers are idempotent by event id.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from counters.definitions import Metric
from counters.tally import Tally
from events.cursors import consume_events
from events.models import Event
from events.serializers import EventSerializer
from wire.json_types import JsonObject

logger = logging.getLogger(__name__)

CURSOR_NAME = "live"
ALL_EVENTS_GROUP = "events.all"


def group_for(kind: str, entity_id: object) -> str:
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


def event_message(event: Event) -> JsonObject:
    """The event as subscribers get it (the shape of GET /api/events)."""
    return dict(EventSerializer(event).data)


EVENTS_RELAYED = Metric("events_relayed_total", "Events published to live subscribers by the relay.")


def relay_once(batch: int | None = None) -> int:
    """Publish the next committed events; returns how many."""
    return consume_events(CURSOR_NAME, batch or settings.EVENT_RELAY_BATCH, _publish_events)


def _publish_events(events: list[Event]) -> None:
    tally = Tally()
    tally.add(EVENTS_RELAYED, amount=len(events))
    tally.flush()  # in the cursor's transaction: counted exactly when the cursor moves past them
    deliveries = []
    for event in sorted(events, key=lambda e: e.id):  # one job's events in the order they happened
        # The tenant travels beside the event: each socket passes on only what its key may see.
        message = {"type": "event.message", "event": event_message(event), "tenant_id": event.tenant_id}
        deliveries += [(group, message) for group in groups_of(event)]
    async_to_sync(_publish)(deliveries)


async def _publish(deliveries: list[tuple[str, JsonObject]]) -> None:
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
