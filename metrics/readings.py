"""Counts of the system's state right now, read from Postgres: what the gauges of `/metrics` and the
dashboard API (`GET /api/jobs/metrics`) both show."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from jobqueue.models import PENDING_POOL, DeadLetterJob, Job, JobStatus
from machines.models import Worker, WorkerStatus, live_condition
from wire.json_types import JsonObject

ANY_POOL = "any"  # the pool label of jobs that may run in any pool
# queue_depth_gauge's statuses: the jobs not yet finished, and "dlq" (open dead letters), as the
# seeds' alert rules name them.
DEPTH_STATUSES = (
    JobStatus.PENDING,
    JobStatus.SCHEDULED,
    JobStatus.WAITING,
    JobStatus.ASSIGNED,
    JobStatus.RUNNING,
)
DLQ = "dlq"
WINDOWS = {"last_hour": timedelta(hours=1), "last_24h": timedelta(hours=24)}


def queue_depths() -> dict[tuple[str, str], int]:
    """{(status, pool): jobs}; every status appears (0 under `any` when it has none)."""
    rows = (
        Job.objects.filter(status__in=DEPTH_STATUSES)
        .annotate(pool=PENDING_POOL)
        .values("status", "pool")
        .annotate(count=Count("id"))
        .order_by()
    )
    depth = {(r["status"], r["pool"] or ANY_POOL): r["count"] for r in rows}
    dead = DeadLetterJob.objects.open().values("job__required_pool").annotate(count=Count("id")).order_by()
    for row in dead:
        depth[(DLQ, row["job__required_pool"] or ANY_POOL)] = row["count"]
    for status in (*DEPTH_STATUSES, DLQ):
        depth.setdefault((status, ANY_POOL), 0)
    return depth


def workers() -> dict[tuple[str, str], int]:
    """{(pool, status): workers}; silent workers count as offline, as dispatch treats them."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    live = Worker.objects.filter(live_condition()).values_list("pool", "status").annotate(count=Count("id"))
    for pool, status, count in live.order_by():
        counts[(pool, status)] += count
    gone = Worker.objects.exclude(live_condition()).values_list("pool").annotate(count=Count("id"))
    for pool, count in gone.order_by():
        counts[(pool, WorkerStatus.OFFLINE.value)] += count
    return counts


def open_dead_letters(depths: dict[tuple[str, str], int]) -> int:
    return sum(count for (status, _), count in depths.items() if status == DLQ)


def alive_by_pool(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    alive: dict[str, int] = defaultdict(int)
    for (pool, status), count in counts.items():
        alive[pool] += count if status != WorkerStatus.OFFLINE else 0
    return alive


def throughput(window: timedelta) -> JsonObject:
    """Jobs submitted and finished in the window, and the failure rate of each type."""
    since = timezone.now() - window
    submitted = Job.objects.filter(created_at__gte=since).count()
    finished = (
        Job.objects.filter(completed_at__gte=since)
        .values("type", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_status: dict[str, int] = dict.fromkeys((JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED), 0)
    by_type: dict[str, JsonObject] = {}
    for row in finished:
        by_status[row["status"]] += row["count"]
        entry = by_type.setdefault(row["type"], {"finished": 0, "failed": 0})
        entry["finished"] += row["count"]
        entry["failed"] += row["count"] if row["status"] == JobStatus.FAILED else 0
    for entry in by_type.values():
        entry["failure_rate"] = round(entry["failed"] / entry["finished"], 4)
    minutes = window.total_seconds() / 60
    return {
        "submitted": submitted,
        **by_status,
        "completed_per_minute": round(by_status[JobStatus.COMPLETED] / minutes, 3),
        "error_rates": by_type,
    }


def dashboard() -> JsonObject:
    """The seeds' dashboard: queue depths, worker health, throughput and error rates."""
    depths = queue_depths()
    by_status: dict[str, int] = defaultdict(int)
    by_pool: dict[str, dict[str, int]] = defaultdict(dict)
    for (status, pool), count in depths.items():
        by_status[status] += count
        if count:
            by_pool[pool][status] = count
    counts = workers()
    worker_status: dict[str, int] = defaultdict(int)
    for (_, status), count in counts.items():
        worker_status[status] += count
    alive = alive_by_pool(counts)
    return {
        "queue": {**by_status, "by_pool": by_pool},
        "workers": {"alive": sum(alive.values()), "by_status": worker_status, "alive_by_pool": alive},
        "throughput": {name: throughput(window) for name, window in WINDOWS.items()},
        "generated_at": timezone.now().isoformat(),
    }
