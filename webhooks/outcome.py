"""What an attempt's answer means for its delivery (succeeded, retried at the next step of the schedule,
or dead-lettered) and for its endpoint's health (a failure streak, disabling it), in one transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from counters.definitions import LATENCY_BUCKETS, Metric
from counters.tally import Tally
from events.recording import record_tenant_event
from events.types import EventType
from outbox import outcomes
from outbox.schedule import ONCE
from webhooks.models import (
    DeliveryDeadLetterReason,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.payloads import TEST_EVENT_TYPE
from webhooks.retry import GONE, is_final_rejection, policy
from webhooks.send import SendResult
from wire.json_types import JsonObject

logger = logging.getLogger(__name__)
_SUCCESS_STAMP_EVERY = timedelta(seconds=1)  # an endpoint's last_success_at, refreshed at most this often

ATTEMPTS = Metric("webhook_attempts_total", "Webhook delivery attempts by outcome.", ("outcome",))
ATTEMPT_SECONDS = Metric(
    "webhook_attempt_seconds", "How long receivers took to answer.", ("outcome",), LATENCY_BUCKETS
)
DEAD_LETTERED = Metric("webhook_deliveries_dead_lettered_total", "Webhook deliveries given up.", ("reason",))


def record(
    sent_delivery: WebhookDelivery, attempt_token: uuid.UUID, started_at: datetime, result: SendResult
) -> WebhookAttempt | None:
    """Log the attempt and decide the delivery's fate (`outbox/outcomes.py`), in one transaction. An
    attempt whose delivery was leased again meanwhile records nothing: the delivery is the newer
    attempt's now (None)."""
    with transaction.atomic():
        test = sent_delivery.event_type == TEST_EVENT_TYPE
        sent = outcomes.Sent(result.succeeded, result.retry_after, _final_reason(result) or "")
        delivery = outcomes.settle(
            WebhookDelivery, sent_delivery.pk, attempt_token, sent, ONCE if test else policy(), started_at
        )
        if delivery is None:
            return None
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempt_count,
            started_at=started_at,
            latency_ms=result.latency_ms,
            status_code=result.status_code,
            response_excerpt=result.response_excerpt,
            error=result.error,
            succeeded=result.succeeded,
            next_attempt_at=delivery.next_attempt_at,  # None once it is delivered or dead-lettered
        )
        if delivery.endpoint_id and not test:  # a test message tells nothing of the endpoint's health
            _update_endpoint_health(delivery.endpoint_id, result, timezone.now())
        _count(delivery, result)
    return attempt


def _count(delivery: WebhookDelivery, result: SendResult) -> None:
    """The attempt's outcome in the metrics, in its transaction."""
    tally = Tally()
    outcome = _outcome(result)
    tally.add(ATTEMPTS, {"outcome": outcome})
    if result.latency_ms is not None:
        tally.observe(ATTEMPT_SECONDS, {"outcome": outcome}, result.latency_ms / 1000)
    if delivery.status == DeliveryStatus.DEAD_LETTERED:
        tally.add(DEAD_LETTERED, {"reason": delivery.dead_letter_reason})
    tally.flush()


def _outcome(result: SendResult) -> str:
    """A bounded label: succeeded, blocked, network_error (no answer), or the answer's class (http_4xx)."""
    if result.succeeded:
        return "succeeded"
    if result.blocked:
        return "blocked"
    if result.status_code is None:
        return "network_error"
    return f"http_{result.status_code // 100}xx"


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop delivering to a (locked) endpoint, and say so in the event log."""
    endpoint.enabled, endpoint.disabled_reason = False, reason
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    payload: JsonObject = {"endpoint_id": str(endpoint.id), "url": endpoint.url, "reason": reason}
    record_tenant_event(EventType.WEBHOOK_ENDPOINT_DISABLED, payload, tenant_id=endpoint.tenant_id)


def _final_reason(result: SendResult) -> DeliveryDeadLetterReason | None:
    if result.blocked:
        return DeliveryDeadLetterReason.BLOCKED_TARGET
    if result.status_code == GONE:
        return DeliveryDeadLetterReason.GONE
    if is_final_rejection(result.status_code):
        return DeliveryDeadLetterReason.REJECTED
    return None


def _update_endpoint_health(endpoint_id: uuid.UUID, result: SendResult, now: datetime) -> None:
    if result.succeeded:
        # No lock in the common case: only a change (or a stale stamp) is written.
        WebhookEndpoint.objects.filter(pk=endpoint_id).filter(
            Q(failing_since__isnull=False)
            | Q(last_success_at__isnull=True)
            | Q(last_success_at__lt=now - _SUCCESS_STAMP_EVERY)
        ).update(failing_since=None, last_success_at=now)
        return
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.last_failure_at = now
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.save(update_fields=["last_failure_at", "failing_since", "updated_at"])
    if not endpoint.enabled:
        return
    if result.status_code == GONE:
        disable_endpoint(endpoint, "the receiver answered 410 Gone")
    elif (now - endpoint.failing_since).total_seconds() >= settings.WEBHOOK_DISABLE_AFTER_SECONDS:
        disable_endpoint(endpoint, f"every delivery failed since {endpoint.failing_since.isoformat()}")
