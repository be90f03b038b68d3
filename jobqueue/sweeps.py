"""Periodic safety nets run by Celery beat. Each is safe to run twice at once (row locks)."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from jobqueue import broker
from jobqueue.dispatch import dispatch_all, dispatch_jobs, dispatch_on_commit
from jobqueue.events import EventType
from jobqueue.models import ACTIVE_STATUSES, Event, Job, JobStatus
from jobqueue.reports import job_failed, worker_lost
from jobqueue.transitions import transition
from machines.models import Worker

logger = logging.getLogger(__name__)

RELEASE_BATCH = 500
BROKER_CLOCK_MARGIN_S = 2  # uptime is whole seconds; don't catch jobs assigned just after the start


def release_scheduled_jobs() -> int:
    """Move scheduled jobs whose time has come to pending and dispatch them."""
    with transaction.atomic():
        due = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=JobStatus.SCHEDULED, scheduled_at__lte=Now())
            .order_by("scheduled_at")
            .values_list("pk", flat=True)[:RELEASE_BATCH]
        )
        released = []
        for job_id in due:
            job = transition(
                job_id,
                from_statuses={JobStatus.SCHEDULED},
                to=JobStatus.PENDING,
                queued_at=Now(),
                event=EventType.JOB_QUEUED,
                event_payload={"reason": "scheduled_time_reached"},
            )
            if job is not None:
                released.append(job.pk)
        dispatch_on_commit(released)
    return len(released)


def dispatch_sweep() -> int:
    """Offer free workers their best jobs (covers races between concurrent dispatchers) and
    re-mirror stored cancellation requests of active jobs, in case Redis lost them."""
    try:
        broker.redis_client().ping()
    except redis.RedisError:
        # Assignments could not be published; they would only bounce back to pending.
        logger.warning("broker unreachable; dispatch sweep skipped")
        return 0
    assigned = len(dispatch_all())
    requested = Job.objects.filter(status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=False)
    for job_id, attempt in requested.values_list("pk", "attempt"):
        try:
            broker.stop_attempt(str(job_id), attempt)
        except Exception:
            logger.exception("could not mirror the cancellation of job %s", job_id)
            break
    return assigned


def recover_lost_jobs() -> int:
    """The lease: an attempt whose worker stopped heartbeating is lost, and is retried (or
    dead-lettered) by the usual rules. A late report from that worker names the old attempt and is
    ignored. Safe to run concurrently: `job_failed` locks the job and re-checks its attempt."""
    from machines.services import mark_silent_workers_offline

    mark_silent_workers_offline()
    try:
        recover_after_broker_restart()
    except redis.RedisError:
        logger.warning("broker unreachable; assignments made before a restart are checked later")
    try:
        requeue_undelivered_assignments()
    except redis.RedisError:
        logger.warning("broker unreachable; undelivered assignments are checked later")
    lost = Job.objects.filter(status__in=ACTIVE_STATUSES, worker_id__in=Worker.objects.silent().values("id"))
    recovered = 0
    for job_id, attempt, worker_id in lost.values_list("pk", "attempt", "worker_id")[:RELEASE_BATCH]:
        if worker_lost(job_id, attempt, f"worker {worker_id} stopped heartbeating"):
            recovered += 1
            _stop_zombie(job_id, attempt)  # in case the worker was only cut off, not dead
    return recovered


_OVERDUE = """
    SELECT id, attempt FROM jobqueue_job
    WHERE status IN ('assigned', 'running')
      AND coalesce(started_at, assigned_at)
          + make_interval(secs => timeout_seconds + %s) < clock_timestamp()
    LIMIT %s
"""


def fail_timed_out_jobs() -> int:
    """The control plane's own deadline: an attempt that ran past its timeout (plus a grace period for
    the worker to report its own TIMEOUT) fails with TIMEOUT, a transient error, and is retried by the
    usual rules. Any later report from that attempt is ignored."""
    with connection.cursor() as cursor:
        cursor.execute(_OVERDUE, [settings.JOB_TIMEOUT_GRACE_SECONDS, RELEASE_BATCH])
        overdue = cursor.fetchall()
    failed = 0
    for job_id, attempt in overdue:
        error = {
            "code": "TIMEOUT",
            "message": "no outcome reported within the job's timeout",
            "class": "transient",
        }
        if job_failed(job_id, attempt, error):
            failed += 1
            _stop_zombie(job_id, attempt)
    return failed


def _stop_zombie(job_id, attempt: int) -> None:
    try:
        broker.stop_attempt(str(job_id), attempt)
    except Exception:
        # Its reports are ignored anyway (stale attempt); stopping it only saves the GPU time.
        logger.exception("could not ask the worker to stop job %s attempt %s", job_id, attempt)


def requeue_undelivered_assignments() -> int:
    """An assignment its (live) worker says it never received, well after it was made, was lost on
    the way (a broker that restarted empty, a dropped message): the job goes back to pending without
    using a retry, and the old attempt is told to stop in case its message turns up after all.

    Workers list in each heartbeat the attempts they are running or finished recently, so a job
    whose report is merely still queued is never mistaken for one whose message was lost."""
    from jobqueue.dispatch import unassign_unpublished

    grace = timedelta(seconds=settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS)
    requeued = []
    workers = Worker.objects.live().exclude(seen_reported_at=None)
    for worker in workers.only("id", "seen_attempts", "seen_reported_at"):
        seen = {(str(job_id), int(attempt)) for job_id, attempt in worker.seen_attempts}
        overdue = Job.objects.filter(
            status=JobStatus.ASSIGNED, worker_id=worker.id, assigned_at__lt=worker.seen_reported_at - grace
        )
        for job_id, attempt in overdue.values_list("pk", "attempt")[:RELEASE_BATCH]:
            if (str(job_id), attempt) in seen:
                continue
            if unassign_unpublished(job_id, attempt, f"worker {worker.id} never received this attempt"):
                _stop_zombie(job_id, attempt)
                requeued.append(job_id)
    if requeued:
        dispatch_jobs(requeued)
    return len(requeued)


def recover_after_broker_restart() -> int:
    """Assignments published before the broker last started may have died with it (a Redis without
    persistence restarts empty). Each such job that has not reported a start goes back to pending
    without using a retry, and its old attempt is told to stop, so a message that did survive is
    skipped by its worker. Running jobs are left alone: their workers keep reporting."""
    from jobqueue.dispatch import unassign_unpublished

    uptime = broker.redis_client().info("server")["uptime_in_seconds"]
    broker_started_at = timezone.now() - timedelta(seconds=uptime + BROKER_CLOCK_MARGIN_S)
    stale = Job.objects.filter(status=JobStatus.ASSIGNED, assigned_at__lt=broker_started_at)
    requeued = []
    for job_id, attempt in stale.values_list("pk", "attempt")[:RELEASE_BATCH]:
        if unassign_unpublished(job_id, attempt, "the broker restarted after this job was assigned"):
            _stop_zombie(job_id, attempt)
            requeued.append(job_id)
    if requeued:
        dispatch_jobs(requeued)
    return len(requeued)


def prune_events() -> int:
    """Delete events older than EVENT_RETENTION_DAYS, a batch at a time (short transactions)."""
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    deleted = 0
    while True:
        batch = (
            Event.objects.filter(created_at__lt=cutoff)
            .order_by("id")
            .values("id")[: settings.EVENT_PRUNE_BATCH]
        )
        count, _ = Event.objects.filter(id__in=batch).delete()
        deleted += count
        if count < settings.EVENT_PRUNE_BATCH:
            return deleted
