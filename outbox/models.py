"""What every outbound message (a webhook delivery, an EmProps notification) keeps: its state, its
attempts on the retry schedule, its lease while being sent, and its dead-lettering. Abstract: each
transport's rows live in its own table with its own payload fields."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models.functions import Now

PENDING = "pending"  # waiting for its first attempt, or for its next one (retrying)
DEAD_LETTERED = "dead_lettered"
EXHAUSTED = "exhausted"  # the dead-letter reason when every scheduled attempt failed
REJECTED = "rejected"  # ... when the receiver refused it for good


class OutboxMessage(models.Model):
    # The delivered state in the words of the transport's own API ("succeeded", "notified").
    DELIVERED: ClassVar[str]

    status = models.CharField(max_length=16, default=PENDING)
    dead_letter_reason = models.CharField(max_length=20, blank=True, default="")
    attempt_count = models.PositiveIntegerField(default=0)
    schedule_start_attempt = models.PositiveIntegerField(
        default=0, help_text="attempt_count when the current retry schedule began (a redelivery restarts it)."
    )
    redelivery_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_default=Now())
    lease_token = models.UUIDField(
        null=True, blank=True, help_text="Only the sender holding this token may record an attempt."
    )
    leased_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def attempts_in_schedule(self) -> int:
        return self.attempt_count - self.schedule_start_attempt


# What recording an attempt or a redelivery writes: never a transport's (large, unchanged) payload.
STATE_FIELDS = [
    "status",
    "dead_letter_reason",
    "attempt_count",
    "schedule_start_attempt",
    "redelivery_count",
    "next_attempt_at",
    "lease_token",
    "leased_until",
    "last_attempt_at",
    "delivered_at",
    "dead_lettered_at",
]
