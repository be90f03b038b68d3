"""Webhook endpoints and deliveries held to their rules wherever they are changed: an endpoint edited in
the Django admin passes the SSRF check, and an attempt's outcome counts only while its lease holds."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant
from webhooks import delivery as delivery_module
from webhooks.admin import WebhookEndpointAdmin, WebhookEndpointForm
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.send import SendResult

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenants() -> tuple[Tenant]:
    return (Tenant.objects.create(name="acme"),)


def test_an_endpoint_edited_in_the_django_admin_is_held_to_the_ssrf_check(tenants, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenants[0], url="https://8.8.8.8/hook", secret_encrypted="x"
    )
    assert issubclass(WebhookEndpointAdmin.form, WebhookEndpointForm)

    bound = WebhookEndpointAdmin.form(
        data={
            "tenant": endpoint.tenant_id,
            "url": "http://169.254.169.254/latest",
            "filters": "{}",
            "headers": "{}",
            "event_types": "[]",
            "enabled": "on",
        },
        instance=endpoint,
    )
    assert not bound.is_valid() and "url" in bound.errors
    endpoint.refresh_from_db()
    assert endpoint.url == "https://8.8.8.8/hook"


def test_an_attempts_outcome_is_dropped_when_its_delivery_was_leased_again_meanwhile(tenants, monkeypatch):
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenants[0], url="https://8.8.8.8/hook", secret_encrypted=""
    )
    endpoint.set_new_secret(timedelta(0), timezone.now())
    endpoint.save()
    queued = uuid.uuid4()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        url=endpoint.url,
        tenant=tenants[0],
        event_type="job_completed",
        message_id="msg_1",
        body="{}",
        lease_token=queued,
    )
    newer = uuid.uuid4()

    def slow_send(*args, **kwargs) -> SendResult:
        # The attempt outlived its lease: the pump handed the delivery to a newer attempt meanwhile.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_token=newer)
        return SendResult(status_code=200, latency_ms=1.0)

    monkeypatch.setattr(delivery_module, "send", slow_send)

    assert delivery_module.attempt(delivery.pk, str(queued)) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_token, delivery.attempt_count) == ("pending", newer, 0)
    assert not WebhookAttempt.objects.filter(delivery=delivery).exists()
    assert delivery_module.attempt(delivery.pk, str(queued)) is None  # a duplicate message does nothing


def test_secrets_and_header_values_are_stored_encrypted_and_rotate_to_a_new_key(tenants, settings):
    from django.core.management import call_command

    from webhooks import secrets

    settings.WEBHOOK_SECRETS_KEYS = ["old-key"]
    endpoint = WebhookEndpoint(tenant=tenants[0], url="https://8.8.8.8/hook")
    signing_secret = endpoint.set_new_secret(timedelta(0), timezone.now())
    endpoint.set_headers({"Authorization": "Bearer receiver-token"})
    endpoint.save()
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert "receiver-token" not in str(stored.headers) and signing_secret not in stored.secret_encrypted

    settings.WEBHOOK_SECRETS_KEYS = ["new-key", "old-key"]  # a new key first; the old one still reads
    assert stored.request_headers() == {"Authorization": "Bearer receiver-token"}
    call_command("rotate_webhook_secrets", stdout=io.StringIO())

    settings.WEBHOOK_SECRETS_KEYS = ["new-key"]  # the old key dropped
    rotated = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert rotated.request_headers() == {"Authorization": "Bearer receiver-token"}
    assert rotated.signing_secrets(timezone.now()) == [signing_secret]
    assert secrets.decrypt(rotated.secret_encrypted) == signing_secret
