"""Managing endpoints and their messages: create, change, rotate the secret, test, stats, redeliver."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import ApiKey
from accounts.quotas import ensure_room_for_one_more
from core.errors import DomainError
from outbox import redelivery
from webhooks.models import (
    DefaultSigningSecret,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.outcome import disable_endpoint
from webhooks.payloads import TEST_EVENT_TYPE, test_body
from webhooks.send import default_signing_secret
from webhooks.ssrf import BlockedTarget, check_target
from wire.json_types import JsonObject


class WebhookError(DomainError):
    code = "webhook_error"


class DeliveryAlreadyPending(WebhookError):
    """The delivery is still being tried; it cannot be redelivered until it ends."""

    code = "delivery_pending"
    http_status = 409


def validate_target(url: str) -> None:
    """What an endpoint may point at, checked on save (again before every request)."""
    try:
        check_target(url, unresolvable_ok=True)
    except BlockedTarget as exc:
        raise WebhookError(str(exc), field="url", code=exc.code) from None


def create_endpoint(owner: ApiKey, fields: JsonObject) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret is shown)."""
    validate_target(fields["url"])
    used = WebhookEndpoint.objects.filter(tenant_id=owner.tenant_id).count()
    ensure_room_for_one_more(owner.tenant, "max_webhook_endpoints", used)
    fields = dict(fields)
    headers = fields.pop("headers", {})
    endpoint = WebhookEndpoint(owner=owner, tenant_id=owner.tenant_id, **fields)
    endpoint.set_headers(headers)
    secret = endpoint.set_new_secret(timedelta(0), timezone.now())
    endpoint.save()
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, fields: JsonObject) -> WebhookEndpoint:
    if "url" in fields:
        validate_target(fields["url"])
    if fields.get("enabled") and not endpoint.enabled:
        # Re-enabled by hand: its failure streak starts over.
        fields = {**fields, "disabled_reason": "", "failing_since": None}
    for name, value in fields.items():
        if name == "headers":
            endpoint.set_headers(value)
        else:
            setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def rotate_secret(endpoint_id: uuid.UUID | str, overlap: timedelta) -> tuple[str, datetime | None]:
    """A new secret; the old one keeps signing (a second signature) until the returned time."""
    return _rotate(WebhookEndpoint.objects.filter(pk=endpoint_id), overlap)


def rotate_default_secret(tenant_id: int, overlap: timedelta) -> tuple[str, datetime | None]:
    """The secret signing the tenant's per-job and per-workflow `webhook_url` messages, renewed."""
    default_signing_secret(tenant_id)  # exists from here on
    return _rotate(DefaultSigningSecret.objects.filter(tenant_id=tenant_id), overlap)


def _rotate(holder: QuerySet[Any], overlap: timedelta) -> tuple[str, datetime | None]:
    with transaction.atomic():
        locked = holder.select_for_update().get()
        secret = locked.set_new_secret(overlap, timezone.now())
        locked.save()
    return secret, locked.previous_secret_expires_at


def queue_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `webhook.test` message for the delivery workers (sent once, never retried; it counts
    neither in the endpoint's stats nor toward its health). The caller reads how it went from the
    delivery: an API request never waits on a receiver."""
    test = WebhookDelivery.objects.create(
        endpoint=endpoint,
        url=endpoint.url,
        tenant_id=endpoint.tenant_id,
        owner_id=endpoint.owner_id,
        event_type=TEST_EVENT_TYPE,
        message_id="",
        body=test_body(str(endpoint.id), timezone.now()),
    )
    test.message_id = f"msg_test_{test.pk}"
    test.save(update_fields=["message_id"])
    return test


def redeliver(delivery_id: int, tenant_id: int) -> WebhookDelivery:
    """Send a finished delivery again: same webhook-id and body, a fresh retry schedule."""
    return redelivery.redeliver(
        WebhookDelivery.objects.filter(tenant_id=tenant_id),
        delivery_id,
        lambda: DeliveryAlreadyPending(field="delivery_id", delivery_id=delivery_id),
    )


@dataclass(frozen=True)
class RedeliveryOutcome:
    matched: int
    redelivered: int


def redeliver_failed(
    tenant_id: int, since: datetime, endpoint_id: uuid.UUID | None, limit: int
) -> RedeliveryOutcome:
    """Every dead-lettered delivery of the tenant's since `since` (optionally one endpoint's), again."""
    matching = failed_since(tenant_id, since, endpoint_id)
    return RedeliveryOutcome(matched=matching.count(), redelivered=redelivery.redeliver_each(matching, limit))


def failed_since(tenant_id: int, since: datetime, endpoint_id: uuid.UUID | None) -> QuerySet[WebhookDelivery]:
    queryset = WebhookDelivery.objects.filter(
        tenant_id=tenant_id, status=DeliveryStatus.DEAD_LETTERED, dead_lettered_at__gte=since
    ).exclude(event_type=TEST_EVENT_TYPE)
    if endpoint_id is not None:
        queryset = queryset.filter(endpoint_id=endpoint_id)
    return queryset.order_by("dead_lettered_at", "id")


def endpoint_stats(endpoint: WebhookEndpoint) -> JsonObject:
    counts = redelivery.counts(endpoint.deliveries.exclude(event_type=TEST_EVENT_TYPE))
    attempts = WebhookAttempt.objects.filter(delivery__endpoint=endpoint).aggregate(
        total=Count("id"), failed=Count("id", filter=Q(succeeded=False))
    )
    return {
        "deliveries_total": sum(counts.values()),
        "deliveries_succeeded": counts[DeliveryStatus.SUCCEEDED],
        "deliveries_failed": counts["dead_lettered"],
        "deliveries_pending": counts["pending"] + counts["retrying"],
        "attempts_total": attempts["total"],
        "attempts_failed": attempts["failed"],
        "last_success_at": endpoint.last_success_at,
        "last_failure_at": endpoint.last_failure_at,
        "failing_since": endpoint.failing_since,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
    }


@receiver(pre_delete, sender=ApiKey)
def _stop_when_its_key_is_deleted(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    """A deleted key's endpoints would otherwise receive on as nobody's (their owner set to null)."""
    for endpoint in WebhookEndpoint.objects.select_for_update().filter(owner=instance, enabled=True):
        disable_endpoint(endpoint, "the API key that made it was deleted")
