"""Telling EmProps that a workflow it started ended: exactly once, through the event log.

The EmProps pump reads the event log through its own cursor (`events.cursors.consume_events`) and, in
the cursor's transaction, records one notification per terminal event (`workflow_completed`,
`workflow_failed`, `workflow_cancelled`) of a workflow whose source is EmProps: unique by event id, so
a replayed event adds nothing. The event is written in the transaction that ended the workflow, so
by then the row is terminal and its step details (outputs included) are frozen: a completion never
says `processing`.

Notifications are outbox messages (`outbox/`): due ones are claimed under a lease (so two pumps never
send one twice), sent (`POST /jobs/{workflow_id}/complete`, the id percent-encoded, with an
Idempotency-Key of the event id) and the outcome recorded with the attempt: accepted, retried on
EMPROPS_RETRY_SCHEDULE_SECONDS (a Retry-After is honoured), or dead-lettered when EmProps refuses it
for good or the schedule runs out. An operator can redeliver a dead-lettered one (the schedule starts
again); nothing is re-sent forever.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict
from emprops.client import EmpropsClient, EmpropsError, EmpropsTransient, path
from emprops.models import (
    EmpropsAttempt,
    EmpropsNotification,
    NotificationDeadLetterReason,
    NotificationStatus,
)
from events.models import Event
from events.types import WORKFLOW_ENDINGS
from outbox import leases, outcomes, redelivery
from outbox.schedule import RetryPolicy
from wire.json_types import JsonObject
from workflows.lookup import of_pairs
from workflows.sources import EMPROPS

logger = logging.getLogger(__name__)
_LEASE_MARGIN_SECONDS = 30  # beyond the read timeout, before a silent send is given up on

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
    one_send = settings.EMPROPS_READ_TIMEOUT_SECONDS + _LEASE_MARGIN_SECONDS
    claimed = leases.claim_due(EmpropsNotification, limit or settings.EMPROPS_NOTIFY_BATCH, one_send)
    if claimed:
        client = client or EmpropsClient()
        for notification_id, claim in claimed:
            # The batch is sent one by one: each send takes its notification over with a lease of its
            # own, and one another pump claimed meanwhile (its claim ran out) is left to that pump.
            token = leases.take_over(EmpropsNotification, notification_id, claim, one_send)
            if token is not None:
                attempt(notification_id, token, client)
    return len(claimed)


def seconds_until_next_due(at_most: float) -> float:
    return leases.seconds_until_next_due(EmpropsNotification, at_most)


def attempt(notification_id: int, token: uuid.UUID, client: EmpropsClient) -> EmpropsAttempt | None:
    """Send one claimed notification and record how it went; None if it was claimed again meanwhile."""
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
    latency_ms = int((time.monotonic() - began) * 1000)
    return _record(notification_id, token, started_at, latency_ms, error)


def completion_body(notification: EmpropsNotification) -> JsonObject:
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
    notification_id: int,
    token: uuid.UUID,
    started_at: datetime,
    latency_ms: int,
    error: EmpropsError | None,
) -> EmpropsAttempt | None:
    if error is None:
        sent = outcomes.Sent(delivered=True)
    else:
        final = "" if error.transient else NotificationDeadLetterReason.REJECTED
        sent = outcomes.Sent(delivered=False, retry_after=error.retry_after, final_reason=final)
    with transaction.atomic():
        notification = outcomes.settle(
            EmpropsNotification,
            notification_id,
            token,
            sent,
            policy(),
            started_at,
            last_error=str(error)[:2000] if error else "",
        )
        if notification is None:
            return None
        if notification.status == NotificationStatus.DEAD_LETTERED:
            logger.error("EmProps notification %s dead-lettered: %s", notification_id, error)
        return EmpropsAttempt.objects.create(
            notification=notification,
            number=notification.attempt_count,
            started_at=started_at,
            latency_ms=latency_ms,
            status_code=error.status if error else 200,
            error=str(error)[:2000] if error else "",
            succeeded=error is None,
        )


def policy() -> RetryPolicy:
    """EMPROPS_RETRY_SCHEDULE_SECONDS, a `Retry-After` honoured up to its cap."""
    return RetryPolicy(
        settings.EMPROPS_RETRY_SCHEDULE_SECONDS, retry_after_cap=settings.EMPROPS_MAX_RETRY_AFTER_SECONDS
    )


def redeliver(notification_id: int) -> EmpropsNotification:
    """Send a notified or dead-lettered notification again, with a fresh retry schedule."""
    return redelivery.redeliver(
        EmpropsNotification.objects.all(),
        notification_id,
        lambda: NotificationAlreadyPending(field="notification_id"),
    )


def counts() -> dict[str, int]:
    """Notifications by state: pending (no attempt yet), retrying, notified, dead-lettered."""
    return redelivery.counts(EmpropsNotification.objects.all())
