"""Recovering work that messages lost: the dispatch sweep, assignments that never reached their worker,
and assignments published before the broker last (re)started. Beat runs these; each is safe to run
twice at once (row locks and compare-and-set)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.db import FieldValues
from core.redis import redis_client
from dispatch import cancel_flags
from dispatch.assignment import dispatch_all, dispatch_jobs, unassign_unpublished
from dispatch.cancel_flags import stop_attempt_quietly
from jobqueue.models import ACTIVE_STATUSES, Job, JobKey, JobStatus
from machines.credentials import sync_broker_users
from machines.models import LIVE_WORKER_SQL, heard_since

logger = logging.getLogger(__name__)

RECOVERY_BATCH = 500  # jobs looked at per sweep and kind
BROKER_CLOCK_MARGIN_S = 2  # uptime is whole seconds; don't catch jobs assigned just after the start


def dispatch_sweep() -> int:
    """Offer free workers their best jobs (covers races between concurrent dispatchers) and
    re-mirror stored cancellation requests of active jobs, in case Redis lost them."""
    try:
        redis_client().ping()
    except redis.RedisError:
        # Assignments could not be published; they would only bounce back to pending.
        logger.warning("broker unreachable; dispatch sweep skipped")
        return 0
    assigned = len(dispatch_all())
    requested = Job.objects.filter(status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=False)
    for job_id, attempt in requested.values_list("pk", "attempt"):
        try:
            cancel_flags.stop_attempt(str(job_id), attempt)
        except Exception:
            logger.exception("could not mirror the cancellation of job %s", job_id)
            break
    return assigned


def recover_lost_messages() -> None:
    """The workers' broker users made again if the broker lost them, then both checks below; a
    broker that does not answer is checked again on the next round."""
    try:
        sync_broker_users()
    except redis.RedisError:
        logger.warning("broker unreachable; workers' broker users are checked later")
    try:
        recover_after_broker_restart()
    except redis.RedisError:
        logger.warning("broker unreachable; assignments made before a restart are checked later")
    try:
        requeue_undelivered_assignments()
    except redis.RedisError:
        logger.warning("broker unreachable; undelivered assignments are checked later")


# Assignments to live workers that reported, well after the assignment, the attempts they hold,
# without this one: one statement for the whole fleet (the attempts are [job id, attempt] pairs).
_UNDELIVERED = f"""
    SELECT j.id, j.attempt, w.id FROM jobqueue_job j JOIN machines_worker w ON w.id = j.worker_id
    WHERE j.status = 'assigned' AND {LIVE_WORKER_SQL} AND w.seen_reported_at IS NOT NULL
      AND j.assigned_at < w.seen_reported_at - make_interval(secs => %(grace)s)
      AND NOT w.seen_attempts @> jsonb_build_array(jsonb_build_array(j.id::text, j.attempt))
    LIMIT %(most)s
"""


def requeue_undelivered_assignments() -> int:
    """An assignment its (live) worker says it never received, well after it was made, was lost on
    the way (a broker that restarted empty, a dropped message): the job goes back to pending without
    using a retry, and the old attempt is told to stop in case its message turns up after all.

    Workers list in each heartbeat the attempts they are running or finished recently, so a job
    whose report is merely still queued is never mistaken for one whose message was lost."""
    params: FieldValues = {
        "grace": settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS,
        "most": RECOVERY_BATCH,
        "heard_since": heard_since(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_UNDELIVERED, params)
        undelivered = [
            (job_id, attempt, f"worker {worker_id} never received this attempt")
            for job_id, attempt, worker_id in cursor.fetchall()
        ]
    return _requeue_lost_assignments(undelivered, "not delivered")


def recover_after_broker_restart() -> int:
    """Assignments published before the broker last started may have died with it (a Redis without
    persistence restarts empty). Each such job that has not reported a start goes back to pending
    without using a retry, and its old attempt is told to stop, so a message that did survive is
    skipped by its worker. Running jobs are left alone: their workers keep reporting."""
    uptime = int(redis_client().info("server")["uptime_in_seconds"])  # type: ignore[index]  # sync client
    broker_started_at = timezone.now() - timedelta(seconds=uptime + BROKER_CLOCK_MARGIN_S)
    stale = Job.objects.filter(status=JobStatus.ASSIGNED, assigned_at__lt=broker_started_at)
    reason = "the broker restarted after this job was assigned"
    lost = [
        (job_id, attempt, reason) for job_id, attempt in stale.values_list("pk", "attempt")[:RECOVERY_BATCH]
    ]
    return _requeue_lost_assignments(lost, "broker restarted")


def _requeue_lost_assignments(assignments: Sequence[tuple[JobKey, int, str]], why: str) -> int:
    """Each (job, attempt, reason) that is still that assignment goes back to pending without using a
    retry, and its attempt is told to stop; the requeued jobs are offered to workers again."""
    requeued = []
    for job_id, attempt, reason in assignments:
        if unassign_unpublished(job_id, attempt, reason):
            stop_attempt_quietly(str(job_id), attempt, why)
            requeued.append(job_id)
    if requeued:
        dispatch_jobs(requeued)
    return len(requeued)
