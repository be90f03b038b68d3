"""Beat's event-log retention."""

from __future__ import annotations

from celery import shared_task

from events import retention


@shared_task(name="jobqueue.prune_events")
def prune_events() -> int:
    return retention.prune_events()
