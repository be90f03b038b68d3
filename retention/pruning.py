"""How long the record keeps what is finished (RETENTION_* settings, per kind), pruned by beat in
bounded batches: finished jobs with their executions and events, finished workflows with their jobs,
webhook deliveries with their attempts, requeued dead letters' history, retired workers and machines,
and the rest of the event log.
Optionally each row is written as a JSON line (RETENTION_EXPORT_DIR) before it is deleted.

Nothing is deleted that a consumer of the event log still has to read: rows count as old only if
they finished before the oldest event some cursor has not passed yet."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from events.cursors import oldest_unpassed_at
from events.models import Event
from jobqueue.models import TERMINAL_STATUSES, DeadLetterJob, Job
from machines.models import Machine, MachineStatus, Worker, WorkerStatus
from webhooks.models import DeliveryStatus, WebhookDelivery
from workflows.lookup import named
from workflows.models import TERMINAL_WORKFLOW_STATUSES, Workflow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of record: which of its rows may go once old, the (indexed) column that dates them,
    oldest first, and how long they are kept."""

    name: str
    days: Callable[[], float]
    finished: Callable[[], models.QuerySet[Any]]
    age: str
    also_delete: Callable[[list[Any]], None] = lambda ids: None
    batch: Callable[[], int] = lambda: settings.RETENTION_BATCH  # rows per transaction

    def old(self, cutoff: datetime) -> models.QuerySet[Any]:
        return self.finished().filter(**{f"{self.age}__lt": cutoff}).order_by(self.age)


def _finished_jobs() -> models.QuerySet[Job]:
    # A workflow's jobs go with their workflow.
    return Job.objects.filter(status__in=TERMINAL_STATUSES, workflow_id__isnull=True)


def _jobs_events(ids: list[Any]) -> None:
    Event.objects.filter(job_id__in=ids).delete()


def _finished_workflows() -> models.QuerySet[Workflow]:
    return Workflow.objects.filter(status__in=TERMINAL_WORKFLOW_STATUSES)


def _workflows_jobs_and_events(keys: list[Any]) -> None:
    names = list(Workflow.objects.filter(pk__in=keys).values_list("tenant_id", "workflow_id"))
    Job.objects.filter(workflow_step__workflow_id__in=keys).delete()
    Event.objects.filter(named(names)).delete()


def _retired_machines() -> models.QuerySet[Machine]:
    return Machine.objects.filter(status=MachineStatus.OFFLINE).exclude(
        id__in=Worker.objects.values("machine_id")
    )


KINDS = (
    Kind("jobs", lambda: settings.RETENTION_JOBS_DAYS, _finished_jobs, "completed_at", _jobs_events),
    Kind(
        "workflows",
        lambda: settings.RETENTION_JOBS_DAYS,
        _finished_workflows,
        "completed_at",
        _workflows_jobs_and_events,
    ),
    Kind(
        "webhook_deliveries",
        lambda: settings.RETENTION_WEBHOOK_DELIVERIES_DAYS,
        lambda: WebhookDelivery.objects.exclude(status=DeliveryStatus.PENDING),
        "created_at",
    ),
    Kind(
        "dead_letters",
        lambda: settings.RETENTION_DEAD_LETTERS_DAYS,
        DeadLetterJob.objects.requeued,
        "requeued_at",
    ),
    Kind(
        "workers",
        lambda: settings.RETENTION_RETIRED_WORKERS_DAYS,
        lambda: Worker.objects.filter(status=WorkerStatus.OFFLINE),
        "last_seen_at",
    ),
    Kind("machines", lambda: settings.RETENTION_RETIRED_WORKERS_DAYS, _retired_machines, "last_seen_at"),
    # The log grows fastest (several events per job): larger batches.
    Kind(
        "events",
        lambda: settings.EVENT_RETENTION_DAYS,
        Event.objects.all,
        "created_at",
        batch=lambda: settings.EVENT_PRUNE_BATCH,
    ),
)


def prune_all(now: datetime | None = None) -> dict[str, int]:
    """Prune every kind, at most RETENTION_MAX_BATCHES batches of RETENTION_BATCH rows each per run
    (beat runs it again soon); returns how many rows of each kind went."""
    now = now or timezone.now()
    horizon = oldest_unpassed_at()
    pruned = {}
    for kind in KINDS:
        cutoff = now - timedelta(days=kind.days())
        if horizon is not None:
            cutoff = min(cutoff, horizon)
        pruned[kind.name] = _prune(kind, cutoff)
    if any(pruned.values()):
        logger.info("retention pruned %s", pruned)
    return pruned


def _prune(kind: Kind, cutoff: datetime) -> int:
    deleted, batch = 0, kind.batch()
    for _ in range(settings.RETENTION_MAX_BATCHES):
        with transaction.atomic():
            old = kind.old(cutoff)
            rows = list(old.select_for_update(skip_locked=True)[:batch])
            if not rows:
                break
            _export(kind.name, rows)
            ids = [row.pk for row in rows]
            kind.also_delete(ids)
            old.filter(pk__in=ids).delete()
            deleted += len(rows)
        if len(rows) < batch:
            break
    return deleted


def _export(kind: str, rows: list[models.Model]) -> None:
    """Append the rows as JSON lines to RETENTION_EXPORT_DIR/<kind>-<date>.jsonl (when set)."""
    if not settings.RETENTION_EXPORT_DIR:
        return
    folder = Path(settings.RETENTION_EXPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{timezone.now():%Y%m%d}.jsonl"
    with path.open("a") as export:
        for row in rows:
            fields = {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}
            export.write(json.dumps(fields, cls=DjangoJSONEncoder) + "\n")
