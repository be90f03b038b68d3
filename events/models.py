"""The event log, and how far each of its consumers has read it."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from core.db import CurrentTransactionId


class Event(models.Model):
    """Append-only log of everything that happened, written in the transaction of the change."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(db_default=Now())
    # The tenant whose job or workflow it is about (no foreign key: the event log knows no other app's
    # tables); none for the fleet's own events (machines, workers), which only operators see.
    tenant_id = models.BigIntegerField(null=True, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    workflow_id = models.CharField(max_length=100, null=True, blank=True)
    machine_id = models.CharField(max_length=200, null=True, blank=True)
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    correlation_id = models.CharField(max_length=100, blank=True, default="")
    causation_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    txid = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)

    class Meta:
        db_table = "jobqueue_event"  # created by the jobqueue app; moved here with its table
        indexes = [
            models.Index(fields=["job_id", "id"], name="event_job"),
            models.Index(fields=["workflow_id", "id"], name="event_workflow"),
            models.Index(fields=["txid", "id"], name="event_relay_order"),
            models.Index(fields=["type", "id"], name="event_type"),
            models.Index(fields=["tenant_id", "id"], name="event_tenant"),
            models.Index(fields=["created_at"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type}"


class EventRelayCursor(models.Model):
    """How far a relay has published the event log: (transaction id, event id) of the last event."""

    name = models.CharField(primary_key=True, max_length=50)
    last_txid = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "jobqueue_eventrelaycursor"

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_txid}/{self.last_id}"
