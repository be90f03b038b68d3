"""One delivery attempt, as the delivery worker runs it: take the delivery over by its message's token
(`outbox/leases.py`), respect the endpoint's state and rate limit, send (`send.py`), record the outcome
(`outcome.py`)."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.utils import timezone

from core.redis import count_in_this_second
from outbox import leases, outcomes
from webhooks import emp_dialect
from webhooks.models import (
    DeliveryDeadLetterReason,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFormat,
)
from webhooks.outcome import record
from webhooks.send import SendResult, send, signing_secrets
from wire import logs

logger = logging.getLogger(__name__)

_IN_FLIGHT_MARGIN_SECONDS = 30  # beyond the request timeout, before a silent attempt is given up on


def attempt(delivery_id: int, lease_token: str) -> WebhookAttempt | None:
    """Run the attempt this message was queued for; None if it was stale or had to wait."""
    # The queued message's token is spent (a duplicate finds nothing); this attempt holds its own,
    # which its outcome must still match (a re-lease after a lost worker hands the delivery on).
    in_flight = settings.WEBHOOK_TIMEOUT_SECONDS + _IN_FLIGHT_MARGIN_SECONDS
    attempt_token = leases.take_over(WebhookDelivery, delivery_id, lease_token, in_flight)
    if attempt_token is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint__owner").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.enabled:
        outcomes.dead_letter(WebhookDelivery, delivery_id, DeliveryDeadLetterReason.ENDPOINT_DISABLED)
        return None
    if endpoint is not None and endpoint.owner is not None and not endpoint.owner.is_usable():
        outcomes.dead_letter(WebhookDelivery, delivery_id, DeliveryDeadLetterReason.KEY_UNUSABLE)
        return None
    if endpoint is not None and endpoint.rate_limit_per_second and _over_rate_limit(endpoint):
        outcomes.postpone(WebhookDelivery, delivery_id, seconds=1.0)
        return None
    about = {"tenant_id": delivery.tenant_id, "job_id": delivery.job_id, "workflow_id": delivery.workflow_id}
    with logs.log_context(**about):
        return _send(delivery, attempt_token)


def _send(delivery: WebhookDelivery, attempt_token: uuid.UUID) -> WebhookAttempt | None:
    started_at = timezone.now()
    try:
        secrets = signing_secrets(delivery, started_at)
        result = send(
            delivery.url,
            delivery.message_id,
            delivery.body,
            secrets,
            _headers(delivery, delivery.endpoint, secrets),
            tenant_id=delivery.tenant_id,
        )
    except Exception as exc:
        # Whatever went wrong, the attempt is recorded and retried on the schedule (an attempt that
        # vanished would be re-sent by the pump every lease, forever).
        logger.exception("delivery %s: sending failed unexpectedly", delivery.pk)
        result = SendResult(error=f"internal error: {type(exc).__name__}")
    return record(delivery, attempt_token, started_at, result)


def _headers(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, secrets: list[str]
) -> dict[str, str]:
    """The endpoint's own headers, and the replaced system's for an endpoint in its format."""
    if endpoint is None:
        return {}
    own = endpoint.request_headers()
    if endpoint.format != WebhookFormat.EMP:
        return own
    dialect = emp_dialect.headers(
        delivery.event_type, str(endpoint.pk), delivery.event_id, secrets[0], delivery.body.encode()
    )
    return {**own, **dialect}


def _over_rate_limit(endpoint: WebhookEndpoint) -> bool:
    """A one-second window per endpoint, shared by every delivery worker."""
    return count_in_this_second(f"webhooks:{endpoint.id}") > (endpoint.rate_limit_per_second or 0)
