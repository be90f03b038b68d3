"""Read models of the fleet, for the API and the monitor's snapshot (`live/snapshot.py`) alike:
machines with their workers, workers with their counts, and pools with their load and what waits
for them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.db.models import Count, Min, Q
from django.utils import timezone

from dispatch.matching import explain
from jobqueue.models import ACTIVE_STATUSES, ExecutionOutcome, Job, JobExecution, JobStatus
from machines.models import Machine, MachineStatus, Worker, WorkerStatus
from wire.json_types import JsonObject

RECENT_FAILURES_SHOWN = 10
UNROUTABLE_JOBS_EXAMINED = 200  # the oldest pending jobs checked for "no eligible worker"


def worker_rows(workers: Sequence[Worker]) -> list[JsonObject]:
    ids = [w.id for w in workers]
    counts = {
        row["worker_id"]: row
        for row in JobExecution.objects.filter(worker_id__in=ids)
        .values("worker_id")
        .annotate(
            completed=Count("id", filter=Q(outcome=ExecutionOutcome.COMPLETED)),
            failed=Count("id", filter=Q(outcome=ExecutionOutcome.FAILED)),
        )
    }
    current = defaultdict(list)
    for worker_id, job_id in Job.objects.filter(worker_id__in=ids, status__in=ACTIVE_STATUSES).values_list(
        "worker_id", "id"
    ):
        current[worker_id].append(str(job_id))
    return [
        {
            "id": w.id,
            "machine_id": w.machine_id,
            "pool": w.pool,
            "gpu_index": w.gpu_index,
            "gpu_name": w.gpu_name,
            "gpu_memory_gb": w.gpu_memory_gb,
            "job_types": w.job_types,
            "capabilities": w.capabilities,
            "models": w.model_names,
            "slots": w.slots,
            "status": w.status if w.is_live else WorkerStatus.OFFLINE,
            "live": w.is_live,
            "draining": w.draining,
            "engine_healthy": w.engine_healthy,
            "health_detail": w.health_detail,
            "customer_allowlist": w.customer_allowlist,
            "customer_denylist": w.customer_denylist,
            "current_jobs": current.get(w.id, []),
            "jobs_completed": counts[w.id]["completed"] if w.id in counts else 0,
            "jobs_failed": counts[w.id]["failed"] if w.id in counts else 0,
            "telemetry": w.telemetry,
            "registered_at": w.registered_at,
            "last_heartbeat_at": w.last_seen_at,
        }
        for w in workers
    ]


def machine_status(machine: Machine | None, workers: list[JsonObject]) -> str:
    """A machine's status as shown, from its row and its workers' rows (`worker_rows`). Judged at read
    time, as each worker's own status is: a machine none of whose workers is live is offline even
    before the sweep that records it has run; one running a job is "busy"."""
    if workers and not any(w["live"] for w in workers):
        return MachineStatus.OFFLINE
    recorded = (
        machine.status if machine is not None else MachineStatus.ONLINE if workers else MachineStatus.STARTING
    )
    busy = recorded == MachineStatus.ONLINE and any(w["current_jobs"] for w in workers)
    return "busy" if busy else recorded


def machine_row(machine: Machine, workers: list[JsonObject]) -> JsonObject:
    return {
        "id": machine.id,
        "hostname": machine.hostname,
        "pool": machine.pool,
        "status": machine_status(machine, workers),
        "draining": machine.draining,
        "gpus": machine.gpus,
        "cpu_count": machine.cpu_count,
        "ram_gb": machine.ram_gb,
        "software": machine.software,
        "labels": machine.labels,
        "registered_at": machine.registered_at,
        "last_seen_at": max([machine.last_seen_at, *[w["last_heartbeat_at"] for w in workers]]),
        "workers": workers,
    }


def machines(machines: Sequence[Machine]) -> list[JsonObject]:
    by_machine = defaultdict(list)
    workers = Worker.objects.filter(machine_id__in=[m.id for m in machines]).order_by("machine_id", "id")
    for row in worker_rows(list(workers)):
        by_machine[row["machine_id"]].append(row)
    return [machine_row(m, by_machine[m.id]) for m in machines]


def recent_failures(machine_id: str) -> list[JsonObject]:
    failed = (
        JobExecution.objects.filter(
            machine_id=machine_id, outcome__in=[ExecutionOutcome.FAILED, ExecutionOutcome.LOST]
        )
        .select_related("job")
        .order_by("-finished_at")[:RECENT_FAILURES_SHOWN]
    )
    return [
        {
            "job_id": str(e.job_id),
            "type": e.job.type,
            "attempt": e.attempt,
            "worker_id": e.worker_id,
            "outcome": e.outcome,
            "error": e.error,
            "finished_at": e.finished_at,
        }
        for e in failed
    ]


def pools(now: datetime | None = None) -> JsonObject:
    """Per pool: machines, workers by state, waiting jobs and the oldest's age; and the waiting jobs
    no live worker can take, each with the requirement nobody meets."""
    now = now or timezone.now()
    live_workers = list(Worker.objects.live())
    summary: dict[str, JsonObject] = defaultdict(
        lambda: {
            "machines": 0,
            "workers": {"idle": 0, "busy": 0, "offline": 0},
            "waiting_jobs": 0,
            "oldest_waiting_s": None,
        }
    )
    for pool, count in Machine.objects.values_list("pool").annotate(n=Count("id")):
        summary[pool]["machines"] = count
    live_ids = {w.id for w in live_workers}
    for worker in Worker.objects.all():
        state = worker.status if worker.id in live_ids else WorkerStatus.OFFLINE
        summary[worker.pool]["workers"][state] += 1
    pending = Job.objects.filter(status=JobStatus.PENDING)
    for row in pending.values("required_pool").annotate(n=Count("id"), oldest=Min("queued_at")):
        key = row["required_pool"] or "(any)"
        summary[key]["waiting_jobs"] = row["n"]
        if row["oldest"]:
            summary[key]["oldest_waiting_s"] = round((now - row["oldest"]).total_seconds(), 1)
    unroutable = []
    for job in pending.order_by("queued_at")[:UNROUTABLE_JOBS_EXAMINED]:
        verdict = explain(job, live_workers)
        if verdict["unmet"] is not None:
            unroutable.append({"job_id": str(job.id), "type": job.type, **verdict["unmet"]})
    return {
        "pools": [{"pool": name, **values} for name, values in sorted(summary.items())],
        "no_eligible_worker": unroutable,
    }
