"""Webhook endpoints, their signing secrets, and every delivery with each of its attempts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from accounts.models import ApiKey, Tenant
from outbox import models as outbox
from outbox.models import OutboxMessage
from webhooks import secrets


class SigningSecrets(models.Model):
    """A current secret and, for an overlap window after a rotation, the previous one (both encrypted)."""

    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def set_new_secret(self, overlap: timedelta, now: datetime) -> str:
        """Generate a secret, keep the old one valid for `overlap`; returns the new one (shown once)."""
        new_secret = secrets.generate_secret()
        if self.secret_encrypted and overlap.total_seconds() > 0:
            self.previous_secret_encrypted = self.secret_encrypted
            self.previous_secret_expires_at = now + overlap
        else:
            self.previous_secret_encrypted, self.previous_secret_expires_at = "", None
        self.secret_encrypted = secrets.encrypt(new_secret)
        self.secret_rotated_at = now
        return new_secret

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a message is signed with now: the current one, then the previous if still valid."""
        active = [secrets.decrypt(self.secret_encrypted)]
        if (
            self.previous_secret_encrypted
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > now
        ):
            active.append(secrets.decrypt(self.previous_secret_encrypted))
        return active


class WebhookFormat(models.TextChoices):
    STANDARD = "standard", "Standard Webhooks"
    EMP = "emp", "the replaced system's (webhooks/emp_dialect.py)"


class WebhookEndpoint(SigningSecrets):
    """A receiver of one tenant's events: which it wants, how to reach it, and how healthy it is."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_endpoints",
        help_text="The key that created it; the endpoint is its tenant's.",
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True, default="")
    event_types = models.JSONField(default=list, blank=True, help_text="Event types delivered; empty: all.")
    format = models.CharField(max_length=16, choices=WebhookFormat.choices, default=WebhookFormat.STANDARD)
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Any of job_types, priorities, machine_ids, worker_ids, workflow_ids (lists).",
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text="Extra request headers: names, and values encrypted (`request_headers`).",
    )
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success."
    )
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["enabled"], name="webhook_endpoint_enabled")]

    def __str__(self) -> str:
        return f"{self.url} ({'enabled' if self.enabled else 'disabled'})"

    def set_headers(self, headers: dict[str, str]) -> None:
        self.headers = secrets.encrypt_values(headers)

    def request_headers(self) -> dict[str, str]:
        """The extra headers as sent: their values decrypted."""
        return secrets.decrypt_values(self.headers)


class DefaultSigningSecret(SigningSecrets):
    """The secret that signs a tenant's per-job and per-workflow `webhook_url` deliveries."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"default signing secret of {self.tenant}"


class DeliveryStatus(models.TextChoices):
    PENDING = outbox.PENDING
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = outbox.DEAD_LETTERED


class DeliveryDeadLetterReason(models.TextChoices):
    EXHAUSTED = outbox.EXHAUSTED, "every scheduled attempt failed"
    REJECTED = outbox.REJECTED, "the receiver answered a final 4xx"
    GONE = "gone", "the receiver answered 410 Gone (endpoint disabled)"
    BLOCKED_TARGET = "blocked_target", "the target address is not allowed"
    ENDPOINT_DISABLED = "endpoint_disabled", "the endpoint was disabled"
    KEY_UNUSABLE = "key_unusable", "the API key that made the endpoint was revoked, deactivated or expired"


class WebhookDelivery(OutboxMessage):
    """One message to one receiver: the same `webhook-id` and body on every attempt."""

    DELIVERED = DeliveryStatus.SUCCEEDED

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    url = models.URLField(
        max_length=2000, help_text="The endpoint's URL, or a job's or workflow's webhook_url."
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event_id = models.BigIntegerField(null=True, blank=True, help_text="Null for test messages.")
    event_type = models.CharField(max_length=64)
    message_id = models.CharField(max_length=100, help_text="The webhook-id header.")
    job_id = models.UUIDField(null=True, blank=True)
    workflow_id = models.CharField(max_length=100, null=True, blank=True)
    body = models.TextField(help_text="The exact JSON sent (and signed) on every attempt.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    dead_letter_reason = models.CharField(
        max_length=20, choices=DeliveryDeadLetterReason.choices, blank=True, default=""
    )

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # A duplicate relay of one event creates no second delivery.
            models.UniqueConstraint(
                fields=["endpoint", "event_id"],
                condition=Q(endpoint__isnull=False),
                name="one_delivery_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["url", "event_id"],
                condition=Q(endpoint__isnull=True),
                name="one_delivery_per_entity_url",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due"
            ),
            models.Index(fields=["endpoint", "status", "id"], name="webhook_delivery_endpoint"),
            models.Index(fields=["tenant", "id"], name="webhook_delivery_tenant"),
            models.Index(fields=["status", "dead_lettered_at"], name="webhook_delivery_dead"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.url} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as it went."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    succeeded = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When it is tried again, if it is."
    )

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error}"
