"""One signed POST to a receiver (Standard Webhooks headers), through the SSRF guard; never raises for
anything the receiver or the network did."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
import urllib3
from django.conf import settings
from django.utils import timezone

from webhooks.dns import Unresolved
from webhooks.models import DefaultSigningSecret, WebhookDelivery
from webhooks.retry import is_success, parse_retry_after
from webhooks.signing import signature_header
from webhooks.ssrf import BlockedTarget, check_target, guarded_session, total_deadline

_READ_CHUNK = 4096


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


def send(
    url: str,
    message_id: str,
    body: str,
    secrets: list[str],
    headers: dict[str, str],
    tenant_id: int | None = None,
) -> SendResult:
    """One signed POST, within WEBHOOK_TIMEOUT_SECONDS of its start to its answer (status line and
    headers; the excerpt of its body has a deadline of its own); never raises for anything the
    receiver or the network did. A host that does not resolve now is a failure to retry, not a
    blocked target (`tenant_id`'s lookups are budgeted: `ssrf.resolve`)."""
    try:
        check_target(url, tenant_id=tenant_id)
    except BlockedTarget as exc:
        return SendResult(error=f"blocked: {exc}", blocked=True)
    except Unresolved as exc:
        return SendResult(error=f"DNS: {exc}"[:500])
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
    deadline = started + settings.WEBHOOK_TIMEOUT_SECONDS
    cutoff = None
    try:
        with (
            total_deadline(settings.WEBHOOK_TIMEOUT_SECONDS) as cutoff,
            guarded_session().post(
                url,
                data=payload,
                headers=request_headers,
                timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
                allow_redirects=False,
                stream=True,  # read only an excerpt of whatever the receiver answers
            ) as response,
        ):
            latency_ms = (time.perf_counter() - started) * 1000
            excerpt, read_error = _excerpt(response, deadline)
            # The status line is the receiver's answer; a body it then stalls, truncates or garbles
            # is noted beside it.
            return SendResult(
                status_code=response.status_code,
                latency_ms=latency_ms,
                response_excerpt=excerpt,
                retry_after=parse_retry_after(response.headers.get("retry-after"), timezone.now()),
                error=read_error,
            )
    except BlockedTarget as exc:
        return SendResult(error=f"blocked: {exc}", blocked=True)
    except requests.Timeout:
        error = f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        if cutoff is not None and cutoff.passed:  # cut off at the deadline: its end says no more
            error = f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    return SendResult(latency_ms=(time.perf_counter() - started) * 1000, error=error)


def _excerpt(response: requests.Response, deadline: float) -> tuple[str, str]:
    """The start of the answer's body, read until the excerpt is full, the body ends or the
    attempt's deadline passes (a receiver trickling its body cannot hold a delivery worker);
    and what went wrong reading it, if anything."""
    wanted, chunks, error = settings.WEBHOOK_RESPONSE_EXCERPT_CHARS * 4, [], ""
    try:
        while wanted > 0:
            if time.perf_counter() > deadline:
                error = f"the answer's body took over {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
                break
            chunk = response.raw.read(min(wanted, _READ_CHUNK), decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        error = f"reading the answer's body failed: {type(exc).__name__}: {exc}"[:500]
    text = b"".join(chunks).decode("utf-8", "replace")[: settings.WEBHOOK_RESPONSE_EXCERPT_CHARS]
    return text, error
