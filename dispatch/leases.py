"""Leases: how long an attempt may go unheard before the control plane takes it back.

A worker's heartbeats (every few seconds) hold the lease on the attempts it runs. A worker silent for
WORKER_OFFLINE_AFTER_SECONDS is offline and its attempts are lost (`expire_leases`), failed as
`WORKER_LOST` and retried by the usual rules; and an attempt past its own deadline (its timeout plus
JOB_TIMEOUT_GRACE_SECONDS) fails as `TIMEOUT` whatever became of its worker. Either way its stop flag
is raised, and a late report from it names an old attempt and changes nothing. Beat runs both.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from dispatch.cancel_flags import stop_attempt_quietly
from dispatch.recovery import RECOVERY_BATCH, recover_lost_messages
from dispatch.reports import report_failed, worker_lost
from jobqueue.models import ACTIVE_STATUSES, Job, statuses_sql
from machines.models import Worker
from machines.registry import mark_silent_workers_offline
from wire.reports import attempt_error


def expire_leases() -> int:
    """The lease: an attempt whose worker stopped heartbeating is lost, and is retried (or
    dead-lettered) by the usual rules. A late report from that worker names the old attempt and is
    ignored. Safe to run concurrently: `report_failed` locks the job and re-checks its attempt."""
    mark_silent_workers_offline()
    recover_lost_messages()
    lost = Job.objects.filter(status__in=ACTIVE_STATUSES, worker_id__in=Worker.objects.silent().values("id"))
    recovered = 0
    for job_id, attempt, worker_id in lost.values_list("pk", "attempt", "worker_id")[:RECOVERY_BATCH]:
        if worker_lost(job_id, attempt, f"worker {worker_id} stopped heartbeating"):
            recovered += 1
            stop_attempt_quietly(str(job_id), attempt, "lease expired")  # it may be only cut off
    return recovered


_OVERDUE = f"""
    SELECT id, attempt FROM jobqueue_job
    WHERE status IN {statuses_sql(ACTIVE_STATUSES)}
      AND coalesce(started_at, assigned_at)
          + make_interval(secs => timeout_seconds + %s) < clock_timestamp()
    LIMIT %s
"""


def fail_timed_out_jobs() -> int:
    """The control plane's own deadline: an attempt that ran past its timeout (plus a grace period for
    the worker to report its own TIMEOUT) fails with TIMEOUT, a transient error, and is retried by the
    usual rules. Any later report from that attempt is ignored."""
    with connection.cursor() as cursor:
        cursor.execute(_OVERDUE, [settings.JOB_TIMEOUT_GRACE_SECONDS, RECOVERY_BATCH])
        overdue = cursor.fetchall()
    failed = 0
    for job_id, attempt in overdue:
        error = attempt_error("TIMEOUT", "no outcome reported within the job's timeout")
        if report_failed(job_id, attempt, error):
            failed += 1
            stop_attempt_quietly(str(job_id), attempt, "timed out")
    return failed
