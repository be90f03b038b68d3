"""How long the event log keeps events (EVENT_RETENTION_DAYS)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from events.cursors import oldest_unpassed_at
from events.models import Event


def prune_events() -> int:
    """Delete events older than EVENT_RETENTION_DAYS, a batch at a time (short transactions), but
    never one a consumer of the log has not passed yet."""
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    horizon = oldest_unpassed_at()
    if horizon is not None:
        cutoff = min(cutoff, horizon)
    deleted = 0
    while True:
        batch = (
            Event.objects.filter(created_at__lt=cutoff)
            .order_by("id")
            .values("id")[: settings.EVENT_PRUNE_BATCH]
        )
        count, _ = Event.objects.filter(id__in=batch).delete()
        deleted += count
        if count < settings.EVENT_PRUNE_BATCH:
            return deleted
