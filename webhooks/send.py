"""One signed POST to a receiver (Standard Webhooks headers), through the SSRF guard; never raises for
anything the receiver or the network did."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.utils import timezone

from webhooks.models import DefaultSigningSecret, WebhookDelivery
from webhooks.retry import is_success, parse_retry_after
from webhooks.signing import signature_header
from webhooks.ssrf import BlockedTarget, check_target, guarded_session


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


def signing_secrets(delivery: WebhookDelivery, now: datetime) -> list[str]:
    if delivery.endpoint is not None:
        return delivery.endpoint.signing_secrets(now)
    return default_signing_secret(delivery.tenant_id).signing_secrets(now)


def default_signing_secret(tenant_id: int) -> DefaultSigningSecret:
    """The tenant's default secret, created (unseen until rotated through the API) on first use."""
    existing = DefaultSigningSecret.objects.filter(tenant_id=tenant_id).first()
    if existing is not None:
        return existing
    created = DefaultSigningSecret(tenant_id=tenant_id)
    created.set_new_secret(timedelta(0), timezone.now())
    DefaultSigningSecret.objects.bulk_create([created], ignore_conflicts=True)
    return DefaultSigningSecret.objects.get(tenant_id=tenant_id)


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
