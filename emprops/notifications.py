"""Telling EmProps that a workflow it started ended: exactly once, through the event log.

The EmProps pump reads the event log through its own cursor (`events.cursors.consume_events`) and, in
the cursor's transaction, records one notification per terminal event (`workflow_completed`,
`workflow_failed`, `workflow_cancelled`) of a workflow whose source is EmProps: unique by event id, so
a replayed event adds nothing. The event is written in the transaction that ended the workflow, so
by then the row is terminal and its step details (outputs included) are frozen: a completion never
says `processing`.

Due notifications are claimed under a short lease (so two pumps never send one twice), sent
(`POST /jobs/{workflow_id}/complete`, the id percent-encoded, with an Idempotency-Key of the event id) and the outcome recorded
with the attempt: accepted, retried on EMPROPS_RETRY_SCHEDULE_SECONDS (a Retry-After is honoured), or
dead-lettered when EmProps refuses it for good or the schedule runs out. An operator can redeliver
a dead-lettered one (the schedule starts again); nothing is re-sent forever.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.db import seconds_until_earliest
from core.errors import Conflict
from core.retry_schedule import next_delay
from emprops.client import EmpropsClient, EmpropsError, EmpropsTransient, path
from emprops.models import EmpropsAttempt, EmpropsNotification, NotificationStatus
from events.models import Event
from events.types import WORKFLOW_ENDINGS
from workflows.lookup import of_pairs
from workflows.sources import EMPROPS

logger = logging.getLogger(__name__)

# EmProps' own spelling of each outcome.
EMPROPS_STATUS = {"completed": "completed", "failed": "failed", "cancelled": "canceled"}


class NotificationAlreadyPending(Conflict):
    """This notification is still being sent; redeliver it once it is notified or dead-lettered."""

    code = "notification_pending"


def record_endings(events: list[Event]) -> int:
    """A notification for each terminal event of an EmProps workflow (in the cursor's transaction)."""
    endings = [
        ((e.tenant_id, e.workflow_id), e)
        for e in events
        if e.type in WORKFLOW_ENDINGS and e.workflow_id is not None and e.job_id is None
    ]
    if not endings:
        return 0
    ours = {
        (tenant_id, workflow_id): key
        for key, tenant_id, workflow_id in of_pairs(pair for pair, _ in endings)
        .filter(source=EMPROPS)
        .values_list("key", "tenant_id", "workflow_id")
    }
    rows = [
        EmpropsNotification(event_id=e.id, workflow_id=ours[pair], outcome=WORKFLOW_ENDINGS[e.type])
        for pair, e in endings
        if pair in ours
    ]
    EmpropsNotification.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def notify_due(limit: int | None = None, client: EmpropsClient | None = None) -> int:
    """Send every due notification (claimed under a lease first); returns how many were attempted."""
    claimed = _claim_due(limit or settings.EMPROPS_NOTIFY_BATCH)
    if claimed:
        client = client or EmpropsClient()
        for notification_id in claimed:
            attempt(notification_id, client)
    return len(claimed)


def seconds_until_next_due(at_most: float) -> float:
    """How long until the next notification is due (0 if one is), capped at `at_most`; one being sent
    now (leased) is not due (the pump would spin on it)."""
    waiting = EmpropsNotification.objects.filter(status=NotificationStatus.PENDING).exclude(
        leased_until__gte=timezone.now()
    )
    return seconds_until_earliest(waiting, "next_attempt_at", at_most)


def _claim_due(limit: int) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        due = list(
            EmpropsNotification.objects.select_for_update(skip_locked=True)
            .filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        lease = timedelta(seconds=settings.EMPROPS_READ_TIMEOUT_SECONDS + 30)
        EmpropsNotification.objects.filter(pk__in=due).update(leased_until=now + lease)
    return due


def attempt(notification_id: int, client: EmpropsClient) -> EmpropsAttempt:
    notification = EmpropsNotification.objects.select_related("workflow").get(pk=notification_id)
    started_at, began = timezone.now(), time.monotonic()
    error: EmpropsError | None = None
    try:
        client.post(
            path("jobs", notification.workflow.workflow_id, "complete"),
            completion_body(notification),
            idempotency_key=f"jobqueue-event-{notification.event_id}",
        )
    except EmpropsError as exc:
        error = exc
    except Exception as exc:  # whatever it was, the attempt is recorded and retried
        logger.exception(
            "notifying EmProps of workflow %s failed unexpectedly", notification.workflow.workflow_id
        )
        error = EmpropsTransient(f"internal error: {type(exc).__name__}")
    return _record(notification_id, started_at, int((time.monotonic() - began) * 1000), error)


def completion_body(notification: EmpropsNotification) -> dict[str, Any]:
    """What EmProps receives: the outcome in its spelling, the outputs, the one `step_details` shape
    and, for a failure, the first failed step's error. Built from the terminal workflow row."""
    workflow = notification.workflow
    steps = workflow.step_details or []
    failed = next((step for step in steps if step.get("status") == "failed"), None)
    return {
        "status": EMPROPS_STATUS[notification.outcome],
        "workflow_id": workflow.workflow_id,
        "collection_id": workflow.metadata.get("collection_id"),
        "event_id": notification.event_id,
        "completed_at": workflow.completed_at.isoformat() if workflow.completed_at else None,
        "workflow_output": {"outputs": [s["result"] for s in steps if s.get("status") == "completed"]},
        "step_details": steps,
        "error": failed.get("error") if failed else None,
    }


def _record(
    notification_id: int, started_at: datetime, latency_ms: int, error: EmpropsError | None
) -> EmpropsAttempt:
    now = timezone.now()
    with transaction.atomic():
        notification = EmpropsNotification.objects.select_for_update().get(pk=notification_id)
        notification.attempt_count += 1
        notification.attempts_in_schedule += 1
        notification.leased_until = None
        if error is None:
            notification.status, notification.notified_at = NotificationStatus.NOTIFIED, now
            notification.next_attempt_at, notification.last_error = None, ""
        else:
            notification.last_error = str(error)[:2000]
            delay = _retry_delay(notification.attempts_in_schedule, error)
            if delay is None:
                notification.status, notification.dead_lettered_at = NotificationStatus.DEAD_LETTERED, now
                notification.next_attempt_at = None
                logger.error("EmProps notification %s dead-lettered: %s", notification_id, error)
            else:
                notification.next_attempt_at = now + timedelta(seconds=delay)
        notification.save()
        return EmpropsAttempt.objects.create(
            notification=notification,
            number=notification.attempt_count,
            started_at=started_at,
            latency_ms=latency_ms,
            status_code=getattr(error, "status", None) if error else 200,
            error=str(error)[:2000] if error else "",
            succeeded=error is None,
        )


def _retry_delay(attempts_in_schedule: int, error: EmpropsError) -> float | None:
    if not error.transient:
        return None
    return next_delay(
        settings.EMPROPS_RETRY_SCHEDULE_SECONDS,
        attempts_in_schedule,
        retry_after=error.retry_after,
        retry_after_cap=settings.EMPROPS_MAX_RETRY_AFTER_SECONDS,
    )


def redeliver(notification_id: int) -> EmpropsNotification:
    """Send a notified or dead-lettered notification again, with a fresh retry schedule."""
    with transaction.atomic():
        notification = EmpropsNotification.objects.select_for_update().get(pk=notification_id)
        if notification.status == NotificationStatus.PENDING:
            raise NotificationAlreadyPending(field="notification_id")
        notification.status = NotificationStatus.PENDING
        notification.attempts_in_schedule = 0
        notification.redelivery_count += 1
        notification.next_attempt_at = timezone.now()
        notification.dead_lettered_at = None
        notification.save()
    return notification


def counts() -> dict[str, int]:
    """Notifications by state: pending (no attempt yet), retrying, notified, dead-lettered."""
    tally = EmpropsNotification.objects.aggregate(
        pending=Count("id", filter=Q(status=NotificationStatus.PENDING, attempt_count=0)),
        retrying=Count("id", filter=Q(status=NotificationStatus.PENDING, attempt_count__gt=0)),
        notified=Count("id", filter=Q(status=NotificationStatus.NOTIFIED)),
        dead_lettered=Count("id", filter=Q(status=NotificationStatus.DEAD_LETTERED)),
    )
    return {name: int(value or 0) for name, value in tally.items()}
