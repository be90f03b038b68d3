"""EmProps notifications: one per terminal event of a workflow EmProps started, with its attempts."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from accounts.models import Tenant
from outbox import models as outbox
from outbox.models import OutboxMessage
from workflows.models import Workflow


class NotificationStatus(models.TextChoices):
    PENDING = outbox.PENDING  # waiting for its first attempt, or for its next one (retrying)
    NOTIFIED = "notified"
    DEAD_LETTERED = outbox.DEAD_LETTERED


class NotificationDeadLetterReason(models.TextChoices):
    EXHAUSTED = outbox.EXHAUSTED, "every scheduled attempt failed"
    REJECTED = outbox.REJECTED, "EmProps refused it for good (a 4xx other than 408 and 429)"


class EmpropsNotification(OutboxMessage):
    """EmProps told that a workflow ended (`POST /jobs/{workflow_id}/complete`), exactly once: one row
    per terminal event (unique), sent until EmProps accepts it or its attempts run out."""

    DELIVERED = NotificationStatus.NOTIFIED

    event_id = models.BigIntegerField(unique=True, help_text="The workflow's terminal event.")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="emprops_notifications")
    outcome = models.CharField(max_length=16, help_text="completed, failed or cancelled")
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    dead_letter_reason = models.CharField(
        max_length=20,
        choices=NotificationDeadLetterReason.choices,
        blank=True,
        default="",
        help_text="Empty on rows dead-lettered before reasons were kept.",
    )
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="emprops_due", condition=models.Q(status="pending"))
        ]

    def __str__(self) -> str:
        return f"workflow {self.workflow.workflow_id} {self.outcome}: {self.status}"


class EmpropsAttempt(models.Model):
    notification = models.ForeignKey(EmpropsNotification, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["number"]


class UserNotified(models.Model):
    """The miniapp's attestation that a user was told of a workflow's result (`POST /api/user_notified`)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="user_notifications")
    user_id = models.CharField(max_length=200, blank=True, default="")
    channel = models.CharField(max_length=50, blank=True, default="")
    notified_at = models.DateTimeField(db_default=Now())


class EmpropsCollection(models.Model):
    """An EmProps collection created through this queue, and the tenant whose key created it: only
    that tenant reads it or starts its generations here (EmProps is asked with the install's key)."""

    collection_id = models.UUIDField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"collection {self.collection_id} ({self.tenant_id})"
