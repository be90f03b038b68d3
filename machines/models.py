"""The worker registry, fed by registration and heartbeat reports over the broker."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class WorkerStatus(models.TextChoices):
    IDLE = "idle"
    BUSY = "busy"
    OFFLINE = "offline"


def heard_since() -> datetime:
    """A worker not heard from since then is silent: it gets no work and its jobs are recovered."""
    return timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)


class WorkerQuerySet(models.QuerySet):
    def live(self) -> WorkerQuerySet:
        return self.filter(last_seen_at__gte=heard_since()).exclude(status=WorkerStatus.OFFLINE)

    def silent(self) -> WorkerQuerySet:
        return self.filter(last_seen_at__lt=heard_since())


class Worker(models.Model):
    """One job-running process (by default one per GPU), consuming its own Celery queue."""

    id = models.CharField(max_length=200, primary_key=True)
    machine_id = models.CharField(max_length=200)
    hostname = models.CharField(max_length=255, blank=True, default="")
    instance_id = models.CharField(max_length=64, help_text="Changes every time the process starts.")
    queue = models.CharField(max_length=255)
    pool = models.CharField(max_length=64, default="standard")
    job_types = models.JSONField(default=list, help_text="Job types its connectors run.")
    capabilities = models.JSONField(default=list)
    model_names = models.JSONField(default=list, help_text="Models it has loaded or can load.")
    gpu_memory_gb = models.FloatField(default=0)
    gpu_index = models.PositiveSmallIntegerField(null=True, blank=True)
    gpu_name = models.CharField(max_length=200, blank=True, default="")
    slots = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.IDLE)
    registered_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When this instance deregistered.")
    info = models.JSONField(default=dict, blank=True, help_text="Everything else the worker reported.")
    seen_attempts = models.JSONField(
        default=list, blank=True, help_text="[job id, attempt] the worker said it received, recently."
    )
    seen_reported_at = models.DateTimeField(null=True, blank=True, help_text="When it last said so.")

    objects = WorkerQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status", "last_seen_at"], name="worker_liveness")]

    def __str__(self) -> str:
        return f"{self.id} ({self.pool}, {self.status})"

    @property
    def is_live(self) -> bool:
        return self.status != WorkerStatus.OFFLINE and self.last_seen_at >= heard_since()
