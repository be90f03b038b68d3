"""What a monitor sees at once: workers, machines, jobs by status, queues, workflows, dead letters,
throughput, and system counts — of the work its key may read (`accounts.scoping.readable`: its
tenant's, or every tenant's for an operator); the fleet (workers, machines) only for operators."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone

from accounts.models import ApiKey
from accounts.scoping import readable, reads_every_tenant
from dispatch import fleet as fleet_rows
from jobqueue.models import (
    ACTIVE_STATUSES,
    DISPATCH_ORDER,
    NOT_STARTED_STATUSES,
    DeadLetterJob,
    Job,
    JobStatus,
)
from machines.models import Machine, MachineStatus, Worker
from wire.json_types import JsonObject

WAITING_JOBS_SHOWN = 100
RECENT_WORKFLOWS_SHOWN = 10
DEAD_LETTERS_SHOWN = 20
THROUGHPUT_MINUTES = 30
JOB_FIELDS = (
    "id",
    "type",
    "status",
    "priority",
    "progress",
    "stage",
    "worker_id",
    "workflow_id",
    "attempt",
    "created_at",
    "started_at",
    "completed_at",
    "error",
)


def full_state(api_key: ApiKey, finished_page: int = 1, finished_page_size: int = 20) -> JsonObject:
    """The replaced system's `full_state_snapshot` data: one consistent read for a dashboard."""
    jobs = readable(Job.objects.all(), api_key)
    # The fleet as the API shows it (`dispatch.fleet`), for operators only; each machine by its id,
    # its workers' ids and whether it is live.
    fleet = Worker.objects.order_by("id") if reads_every_tenant(api_key) else Worker.objects.none()
    workers = fleet_rows.worker_rows(list(fleet))
    by_machine: dict[str, list[JsonObject]] = defaultdict(list)
    for worker in workers:
        by_machine[worker["machine_id"]].append(worker)
    rows = Machine.objects.in_bulk(list(by_machine))
    machines = {
        machine_id: {
            "id": machine_id,
            "workers": [worker["id"] for worker in its_workers],
            "live": fleet_rows.machine_status(rows.get(machine_id), its_workers) != MachineStatus.OFFLINE,
        }
        for machine_id, its_workers in by_machine.items()
    }
    finished = jobs.filter(status__in=(JobStatus.COMPLETED, JobStatus.FAILED)).order_by("-completed_at")
    finished_total = finished.count()
    start = (finished_page - 1) * finished_page_size
    page = list(finished[start : start + finished_page_size].values(*JOB_FIELDS))
    counts = jobs.aggregate(
        total_jobs=Count("id"),
        pending_jobs=Count("id", filter=Q(status__in=NOT_STARTED_STATUSES)),
        active_jobs=Count("id", filter=Q(status__in=ACTIVE_STATUSES)),
        completed_jobs=Count("id", filter=Q(status=JobStatus.COMPLETED)),
        failed_jobs=Count("id", filter=Q(status=JobStatus.FAILED)),
    )
    return {
        "workers": workers,
        "machines": list(machines.values()),
        "jobs": {
            "pending": list(
                jobs.filter(status__in=NOT_STARTED_STATUSES)
                .order_by(*DISPATCH_ORDER)
                .values(*JOB_FIELDS)[:WAITING_JOBS_SHOWN]
            ),
            "active": list(
                jobs.filter(status__in=ACTIVE_STATUSES).order_by("assigned_at").values(*JOB_FIELDS)
            ),
            "completed": [j for j in page if j["status"] == JobStatus.COMPLETED],
            "failed": [j for j in page if j["status"] == JobStatus.FAILED],
        },
        "system_stats": {
            **counts,
            "total_workers": len(workers),
            "active_workers": sum(w["live"] for w in workers),
            "total_machines": len(machines),
        },
        "pagination": {
            "finishedJobs": {
                "page": finished_page,
                "pageSize": finished_page_size,
                "totalCount": finished_total,
                "hasNextPage": start + finished_page_size < finished_total,
                "hasPreviousPage": finished_page > 1,
            }
        },
        "queues": _queue_depths(jobs),
        "workflows": _recent_workflows(api_key),
        "dead_letters": list(
            readable(DeadLetterJob.objects.open(), api_key, tenant_field="job__tenant")
            .order_by("-created_at")
            .values("id", "job_id", "job__type", "reason", "created_at")[:DEAD_LETTERS_SHOWN]
        ),
        "throughput": _completed_per_minute(jobs),
        "timestamp": timezone.now().isoformat(),
    }


def _queue_depths(jobs: QuerySet[Job]) -> list[JsonObject]:
    """Waiting jobs per (type, pool, capabilities), with the oldest one's queue time."""
    rows = (
        jobs.filter(status__in=NOT_STARTED_STATUSES)
        .values("type", "required_pool", "required_capabilities")
        .annotate(depth=Count("id"), oldest=Min("queued_at"))
        .order_by("-depth")[:50]
    )
    return [
        {
            "type": r["type"],
            "pool": r["required_pool"],
            "capabilities": r["required_capabilities"],
            "depth": r["depth"],
            "oldest_queued_at": r["oldest"],
        }
        for r in rows
    ]


def _recent_workflows(api_key: ApiKey) -> list[JsonObject]:
    from workflows.models import Workflow

    workflows = (
        readable(Workflow.objects.all(), api_key)
        .order_by("-created_at")
        .prefetch_related("steps__job")[:RECENT_WORKFLOWS_SHOWN]
    )
    return [
        {
            "id": w.workflow_id,
            "name": w.name,
            "status": w.status,
            "progress": w.progress,
            "total_steps": w.total_steps,
            "steps": [{"index": s.index, "name": s.name, "status": s.job.status} for s in w.steps.all()],
        }
        for w in workflows
    ]


def _completed_per_minute(jobs: QuerySet[Job]) -> list[int]:
    """Jobs completed in each of the last THROUGHPUT_MINUTES minutes, oldest first."""
    now = timezone.now()
    since = now - timedelta(minutes=THROUGHPUT_MINUTES)
    counts = [0] * THROUGHPUT_MINUTES
    rows = (
        jobs.filter(status=JobStatus.COMPLETED, completed_at__gte=since)
        .annotate(minute=TruncMinute("completed_at"))
        .values("minute")
        .annotate(n=Count("id"))
    )
    for row in rows:
        index = int((row["minute"] - since).total_seconds() // 60)
        if 0 <= index < THROUGHPUT_MINUTES:
            counts[index] += row["n"]
    return counts
