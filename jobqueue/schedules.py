"""Recurring jobs: computing run times and submitting the due ones, once each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import ApiKey, usable_key
from core.errors import DomainError
from events.recording import record_tenant_event
from events.types import EventType
from jobqueue.job_request import JobRequest
from jobqueue.models import JobSchedule
from jobqueue.submission import submit_job
from wire.json_types import JsonObject

DUE_BATCH = 200
log = logging.getLogger(__name__)


def next_run_after(schedule: JobSchedule, after: datetime) -> datetime:
    if schedule.cron:
        return _next_cron_run(schedule.cron, after)
    assert schedule.interval_seconds is not None  # a schedule has a cron or an interval (a constraint)
    return after + timedelta(seconds=schedule.interval_seconds)


def _next_cron_run(cron: str, after: datetime) -> datetime:
    return croniter(cron, after).get_next(datetime)


def fires(cron: str, after: datetime) -> bool:
    """A valid cron may still never match a date (`0 0 31 2 *`): its next run cannot be computed."""
    try:
        _next_cron_run(cron, after)
    except CroniterBadDateError:
        return False
    return True


def run_due_schedules(request_from_template: Callable[[JsonObject], JobRequest]) -> int:
    """Submit one job for each due schedule and move it to its next run.

    Safe with several beats: a due schedule is locked with SKIP LOCKED and advanced in the same
    transaction as its job, whose idempotency key names the run. After downtime a schedule runs
    once, not once per missed tick. `request_from_template` parses a stored POST /api/jobs body
    (the API's parser: the template was validated with it when saved). A schedule whose key was
    revoked, deactivated or has expired is paused: not run until its key is usable again (a
    deactivated key may be activated again), then once.
    """
    now = timezone.now()
    submitted = 0
    with transaction.atomic():
        due = (
            JobSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(enabled=True, next_run_at__lte=now)
            .filter(Q(api_key=None) | usable_key("api_key", now))
        )
        for schedule in due.order_by("next_run_at")[:DUE_BATCH]:
            try:
                with transaction.atomic():  # a savepoint: one schedule that cannot run spoils no other
                    _run(schedule, request_from_template, now)
                submitted += 1
            except (ValidationError, DomainError, ValueError) as exc:
                log.warning("schedule %s disabled: its run cannot be submitted: %s", schedule.id, exc)
                _disable(schedule, f"disabled: its run could not be submitted: {exc}")
    return submitted


def _run(
    schedule: JobSchedule, request_from_template: Callable[[JsonObject], JobRequest], now: datetime
) -> None:
    assert schedule.next_run_at is not None  # due: filtered on it
    request = request_from_template(schedule.job_template)
    request.idempotency_key = f"schedule:{schedule.id}:{schedule.next_run_at.isoformat()}"
    request.metadata = {**request.metadata, "schedule_id": str(schedule.id)}
    request.tenant_id = schedule.tenant_id
    job, _ = submit_job(request, schedule.api_key)
    schedule.last_run_at = schedule.next_run_at
    schedule.last_job = job
    schedule.next_run_at = next_run_after(schedule, max(now, schedule.next_run_at))
    schedule.save(update_fields=["last_run_at", "last_job", "next_run_at", "updated_at"])


def _disable(schedule: JobSchedule, reason: str) -> None:
    """A schedule that cannot run (its run cannot be submitted, saved before today's checks, say; or
    its key was deleted) is disabled, and says why, until its owner mends it."""
    schedule.enabled = False
    schedule.next_run_at = None
    schedule.last_error = reason[:500]
    schedule.save(update_fields=["enabled", "next_run_at", "last_error", "updated_at"])
    payload = {"schedule_id": str(schedule.id), "name": schedule.name, "reason": schedule.last_error}
    record_tenant_event(EventType.SCHEDULE_DISABLED, payload, tenant_id=schedule.tenant_id)


@receiver(pre_delete, sender=ApiKey)
def _pause_when_its_key_is_deleted(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    """A deleted key's schedules would otherwise run on as nobody's (their key set to null)."""
    for schedule in JobSchedule.objects.select_for_update().filter(api_key=instance, enabled=True):
        _disable(schedule, "disabled: the API key that made it was deleted")
