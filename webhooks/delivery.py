"""Deliveries, one attempt at a time: hand due ones to the delivery queue, send one signed request,
and record what happened (next attempt, success, or dead letter) with the endpoint's health.

A delivery is run only by the queue message holding its current `dispatch_token`; a lost message
is replaced once its lease runs out, a stale one finds its token gone and does nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobqueue.broker import redis_client
from jobqueue.events import EventType, record_webhook_event
from webhooks.models import (
    DeadLetterReason,
    DefaultSigningSecret,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.schedule import GONE, after, is_final_rejection, is_success, parse_retry_after, retry_delay
from webhooks.signing import signature_header
from webhooks.targets import BlockedTarget, check_target, guarded_session

logger = logging.getLogger(__name__)

_LEASE_DUE = """
    UPDATE webhooks_webhookdelivery
    SET dispatch_token = gen_random_uuid(), leased_until = now() + make_interval(secs => %s)
    WHERE id IN (
        SELECT id FROM webhooks_webhookdelivery
        WHERE status = 'pending' AND next_attempt_at <= now()
          AND (leased_until IS NULL OR leased_until < now())
        ORDER BY next_attempt_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, dispatch_token
"""
DELIVER_TASK = "webhooks.deliver"
_IN_FLIGHT_MARGIN_SECONDS = 30  # beyond the request timeout, before a silent attempt is given up on
_OUTCOME_FIELDS = [
    "attempt_count",
    "last_attempt_at",
    "leased_until",
    "status",
    "delivered_at",
    "dead_letter_reason",
    "dead_lettered_at",
    "next_attempt_at",
]
_SUCCESS_STAMP_EVERY = timedelta(seconds=1)  # an endpoint's last_success_at, refreshed at most this often


@dataclass
class SendResult:
    status_code: int | None = None
    latency_ms: float | None = None
    response_excerpt: str = ""
    error: str = ""
    retry_after: float | None = None
    blocked: bool = False

    @property
    def succeeded(self) -> bool:
        return is_success(self.status_code)


def dispatch_due(limit: int | None = None) -> int:
    """Lease the deliveries that are due and put one message per delivery on the delivery queue."""
    from settings.celery import app

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _LEASE_DUE, [settings.WEBHOOK_DISPATCH_LEASE_SECONDS, limit or settings.WEBHOOK_PUMP_BATCH]
        )
        leased = cursor.fetchall()
    if not leased:
        return 0
    try:
        with app.producer_or_acquire() as producer:
            for delivery_id, token in leased:
                app.send_task(
                    DELIVER_TASK, (delivery_id, str(token)), queue=settings.WEBHOOK_QUEUE, producer=producer
                )
    except Exception:
        # Unpublished (the broker is down): give the leases back so a later pass hands them out again.
        WebhookDelivery.objects.filter(id__in=[d for d, _ in leased], status=DeliveryStatus.PENDING).update(
            dispatch_token=None, leased_until=None
        )
        raise
    return len(leased)


def seconds_until_next_due(at_most: float) -> float:
    """How long until the next pending delivery is due (0 if one is), capped at `at_most`."""
    next_due = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, leased_until__isnull=True)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if next_due is None:
        return at_most
    return min(at_most, max(0.0, (next_due - timezone.now()).total_seconds()))


def attempt(delivery_id: int, dispatch_token: str) -> WebhookAttempt | None:
    """Run the attempt this message was dispatched for; None if it was stale or had to wait."""
    now = timezone.now()
    in_flight = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + _IN_FLIGHT_MARGIN_SECONDS)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, dispatch_token=dispatch_token, status=DeliveryStatus.PENDING
    ).update(dispatch_token=None, leased_until=now + in_flight)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.enabled:
        _dead_letter_unattempted(delivery_id, DeadLetterReason.ENDPOINT_DISABLED)
        return None
    if endpoint is not None and endpoint.rate_limit_per_second and _over_rate_limit(endpoint):
        _postpone(delivery_id, seconds=1.0)
        return None
    started_at = timezone.now()
    result = send(
        delivery.url,
        delivery.message_id,
        delivery.body,
        signing_secrets(delivery, started_at),
        endpoint.headers if endpoint else {},
    )
    return record(delivery_id, started_at, result)


def signing_secrets(delivery: WebhookDelivery, now: datetime) -> list[str]:
    if delivery.endpoint is not None:
        return delivery.endpoint.signing_secrets(now)
    return default_signing_secret(delivery.owner_id).signing_secrets(now)


def default_signing_secret(owner_id: int | None) -> DefaultSigningSecret:
    """The owner's default secret, created (unseen until rotated through the API) on first use."""
    existing = DefaultSigningSecret.objects.filter(owner_id=owner_id).first()
    if existing is not None:
        return existing
    created = DefaultSigningSecret(owner_id=owner_id)
    created.set_new_secret(timedelta(0), timezone.now())
    DefaultSigningSecret.objects.bulk_create([created], ignore_conflicts=True)
    return DefaultSigningSecret.objects.get(owner_id=owner_id)


def send(url: str, message_id: str, body: str, secrets: list[str], headers: dict[str, str]) -> SendResult:
    """One signed POST; never raises for anything the receiver or the network did."""
    try:
        check_target(url)
    except BlockedTarget as exc:
        return SendResult(error=f"blocked: {exc}", blocked=True)
    payload = body.encode()
    timestamp = int(time.time())
    request_headers = {
        **headers,
        "content-type": "application/json",
        "user-agent": settings.WEBHOOK_USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, message_id, timestamp, payload),
    }
    started = time.perf_counter()
    try:
        with guarded_session().post(
            url,
            data=payload,
            headers=request_headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,  # read only an excerpt of whatever the receiver answers
        ) as response:
            latency_ms = (time.perf_counter() - started) * 1000
            excerpt = response.raw.read(settings.WEBHOOK_RESPONSE_EXCERPT_CHARS * 4, decode_content=True)
            return SendResult(
                status_code=response.status_code,
                latency_ms=latency_ms,
                response_excerpt=excerpt.decode("utf-8", "replace")[
                    : settings.WEBHOOK_RESPONSE_EXCERPT_CHARS
                ],
                retry_after=parse_retry_after(response.headers.get("retry-after"), timezone.now()),
            )
    except BlockedTarget as exc:
        return SendResult(error=f"blocked: {exc}", blocked=True)
    except requests.Timeout:
        error = f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return SendResult(latency_ms=(time.perf_counter() - started) * 1000, error=error)


def record(
    delivery_id: int, started_at: datetime, result: SendResult, *, retries: bool = True
) -> WebhookAttempt:
    """Log the attempt and decide the delivery's fate, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        delivery.attempt_count += 1
        delivery.last_attempt_at = started_at
        delivery.leased_until = None
        next_attempt_at = None
        if result.succeeded:
            delivery.status, delivery.delivered_at = DeliveryStatus.SUCCEEDED, now
        else:
            reason = _final_reason(result)
            delay = (
                None
                if reason or not retries
                else retry_delay(delivery.attempts_in_schedule, result.retry_after)
            )
            if delay is None:
                _mark_dead(delivery, reason or DeadLetterReason.EXHAUSTED, now)
            else:
                next_attempt_at = delivery.next_attempt_at = after(now, delay)
        delivery.save(update_fields=_OUTCOME_FIELDS)  # never the (large, unchanged) body
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempt_count,
            started_at=started_at,
            latency_ms=result.latency_ms,
            status_code=result.status_code,
            response_excerpt=result.response_excerpt,
            error=result.error,
            succeeded=result.succeeded,
            next_attempt_at=next_attempt_at,
        )
        if delivery.endpoint_id and retries:
            _update_endpoint_health(delivery.endpoint_id, result, now)
    return attempt


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop delivering to a (locked) endpoint, and say so in the event log."""
    endpoint.enabled, endpoint.disabled_reason = False, reason
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    payload: dict[str, Any] = {"endpoint_id": str(endpoint.id), "url": endpoint.url, "reason": reason}
    record_webhook_event(EventType.WEBHOOK_ENDPOINT_DISABLED, payload)


def _final_reason(result: SendResult) -> DeadLetterReason | None:
    if result.blocked:
        return DeadLetterReason.BLOCKED_TARGET
    if result.status_code == GONE:
        return DeadLetterReason.GONE
    if is_final_rejection(result.status_code):
        return DeadLetterReason.REJECTED
    return None


def _mark_dead(delivery: WebhookDelivery, reason: DeadLetterReason, now: datetime) -> None:
    delivery.status = DeliveryStatus.DEAD_LETTERED
    delivery.dead_letter_reason = reason
    delivery.dead_lettered_at = now
    delivery.next_attempt_at = None


def _update_endpoint_health(endpoint_id: Any, result: SendResult, now: datetime) -> None:
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


def _dead_letter_unattempted(delivery_id: int, reason: DeadLetterReason) -> None:
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.DEAD_LETTERED,
        dead_letter_reason=reason,
        dead_lettered_at=now,
        next_attempt_at=None,
        leased_until=None,
    )


def _postpone(delivery_id: int, seconds: float) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        next_attempt_at=after(timezone.now(), seconds), leased_until=None
    )


def _over_rate_limit(endpoint: WebhookEndpoint) -> bool:
    """A one-second window per endpoint, shared by every delivery worker (in the broker's Redis)."""
    key = f"webhooks:rate:{endpoint.id}:{int(time.time())}"
    client = redis_client()
    sent = client.incr(key)
    if sent == 1:
        client.expire(key, 2)
    return sent > endpoint.rate_limit_per_second
