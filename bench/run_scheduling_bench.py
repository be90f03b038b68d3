"""Scheduling benchmark: the real dispatcher against a virtual fleet in virtual time, each scenario
with its feature on and off in the same run (docs/scheduling.md).

    .venv/bin/python bench/run_scheduling_bench.py
    .venv/bin/python bench/run_scheduling_bench.py --flood-backlog 10000 --limit-jobs 10000

Fleets of hundreds of GPUs running jobs for minutes cannot be run on two cores in real time, and the
question here is the order dispatch chooses, not the transport: so time is virtual. Every job is
submitted, offered, assigned and completed by the control plane's own code on embedded Postgres
(`jobqueue.submission.submit_jobs`, `dispatch.assignment.fill_worker`, `dispatch.reports.
report_succeeded`, which refills the freed worker in its own transaction, as the report lane does);
the fleet only keeps the clock: a job assigned at virtual time t completes at t + its duration. The
messages that would carry assignments to workers are not sent (the fleet reads its assignments from
the database).

Scenarios:
- flood: tenant A queues a backlog, tenant B submits one job a second at the same priority; B's wait
  p50/p95, fair share on and off. Then two tenants that both keep work queued, weights 1:1 and 3:1:
  their share of the fleet's busy time and Jain's fairness index.
- limits: jobs over concurrency keys with a limit each; the most running of any key at once (a
  violation is more than its limit: must be 0 with limits on) and the fleet's use of what the limits
  allow, limits on and off.

Prints a table and writes bench/results/scheduling-<time>.json.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import machine_facts, percentile, save_result  # noqa: E402
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port  # noqa: E402

JOB_TYPE = "simulation"
LIVENESS_REFRESH_S = 5.0  # real seconds: the virtual workers' rows are kept live by the clock of the wall


@dataclass
class Running:
    job_id: str
    attempt: int
    worker_id: str
    tenant: str
    key: str


@dataclass(order=True)
class _Completion:
    at: float
    seq: int
    running: Running = field(compare=False)


class VirtualFleet:
    """Workers with one slot each, as worker rows the dispatcher reads; completes what it is given."""

    def __init__(self, size: int, job_seconds: float) -> None:
        from machines.models import Worker, WorkerCredential
        from wire import names

        self.job_seconds = job_seconds
        self.now = 0.0
        self.completions: list[_Completion] = []
        self.running: dict[str, Running] = {}
        self.submitted_at: dict[str, float] = {}
        self.waits: dict[str, list[float]] = {}
        self.busy_seconds: Counter[str] = Counter()
        self.busy_by_key: Counter[str] = Counter()
        self.most_running_by_key: Counter[str] = Counter()
        self._seq = itertools.count()
        self._tenant_names: dict[int, str] = {}
        self._refreshed = time.monotonic()
        self.worker_ids = [f"sched-{uuid.uuid4().hex[:10]}" for _ in range(size)]
        WorkerCredential.objects.bulk_create(
            [
                WorkerCredential(worker_id=w, pool="standard", secret_hash=uuid.uuid4().hex)
                for w in self.worker_ids
            ]
        )
        Worker.objects.bulk_create(
            [
                Worker(
                    id=w,
                    machine_id="sched-bench",
                    instance_id=uuid.uuid4().hex,
                    queue=names.worker_queue(w),
                    pool="standard",
                    job_types=[JOB_TYPE],
                    capabilities=[],
                    model_names=[],
                    gpu_memory_gb=24,
                    slots=1,
                )
                for w in self.worker_ids
            ]
        )

    def submit(
        self, tenant_id: int, tenant: str, count: int, key: str = "", limit: int | None = None
    ) -> None:
        from jobqueue.job_request import JobRequest
        from jobqueue.submission import submit_jobs

        self._tenant_names[tenant_id] = tenant
        self._keep_live()
        requests = [
            JobRequest(
                type=JOB_TYPE,
                payload={},
                priority=50,
                requirements={},
                required_capabilities=[],
                required_models=[],
                required_gpu_memory_gb=None,
                required_pool=None,
                max_retries=0,
                timeout_seconds=3600,
                tenant_id=tenant_id,
                concurrency_key=key,
                concurrency_limit=limit,
            )
            for _ in range(count)
        ]
        for job, _ in submit_jobs(requests, api_key=None):
            self.submitted_at[str(job.id)] = self.now
        self._collect()

    def offer_all(self) -> None:
        from dispatch.assignment import fill_worker

        self._keep_live()
        for worker_id in self.worker_ids:
            if not any(r.worker_id == worker_id for r in self.running.values()):
                fill_worker(worker_id)
        self._collect()

    def run_until(self, until: float) -> None:
        """Complete every job due by virtual time `until`, each freeing its worker for the next."""
        from dispatch.reports import report_succeeded

        while self.completions and self.completions[0].at <= until:
            done = heapq.heappop(self.completions)
            self._advance(done.at)
            del self.running[done.running.job_id]
            report_succeeded(done.running.job_id, done.running.attempt, {"ok": True})
            self._collect()
        self._advance(until)

    def _advance(self, to: float) -> None:
        elapsed = to - self.now
        for running in self.running.values():
            self.busy_seconds[running.tenant] += elapsed
            self.busy_by_key[running.key] += elapsed
        self.now = to
        self._keep_live()

    def _keep_live(self) -> None:
        """Heartbeats, as far as the control plane can tell: a virtual worker never falls silent."""
        if time.monotonic() - self._refreshed > LIVENESS_REFRESH_S:
            from django.utils import timezone

            from machines.models import Worker

            Worker.objects.filter(pk__in=self.worker_ids).update(last_seen_at=timezone.now())
            self._refreshed = time.monotonic()

    def _collect(self) -> None:
        """Read the assignments made since the last look, and schedule their completions."""
        from jobqueue.models import Job, JobStatus

        assigned = Job.objects.filter(status=JobStatus.ASSIGNED).exclude(pk__in=list(self.running))
        for job_id, attempt, worker_id, tenant_id, key in assigned.values_list(
            "id", "attempt", "worker_id", "tenant_id", "concurrency_key"
        ):
            running = Running(str(job_id), attempt, worker_id, self._tenant_names[tenant_id], key)
            self.running[running.job_id] = running
            tenant = running.tenant
            self.waits.setdefault(tenant, []).append(self.now - self.submitted_at[running.job_id])
            heapq.heappush(
                self.completions, _Completion(self.now + self.job_seconds, next(self._seq), running)
            )
        for key, count in Counter(r.key for r in self.running.values() if r.key).items():
            self.most_running_by_key[key] = max(self.most_running_by_key[key], count)

    def close(self) -> None:
        from jobqueue.models import Job
        from machines.models import Worker, WorkerCredential

        Job.objects.all().delete()
        Worker.objects.filter(pk__in=self.worker_ids).delete()
        WorkerCredential.objects.filter(worker_id__in=self.worker_ids).delete()


def _tenant(name: str, weight: int = 1) -> int:
    from accounts.models import Tenant

    tenant, _ = Tenant.objects.update_or_create(name=name, defaults={"fair_share_weight": weight})
    return tenant.pk


def _fair_share(enabled: bool) -> Iterator[None]:
    from django.conf import settings

    previous = settings.SCHEDULING_FAIR_SHARE
    settings.SCHEDULING_FAIR_SHARE = enabled
    try:
        yield
    finally:
        settings.SCHEDULING_FAIR_SHARE = previous


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}


def flood(args: argparse.Namespace, fair_share: bool) -> dict[str, Any]:
    """A's backlog queued first; B submits one job a second for `--flood-seconds`."""
    for _ in _fair_share(fair_share):
        fleet = VirtualFleet(args.workers, args.job_seconds)
        a, b = _tenant("flood-a"), _tenant("flood-b")
        fleet.submit(a, "A", args.flood_backlog)
        fleet.offer_all()
        for second in tqdm(
            range(args.flood_seconds), desc=f"flood, fair share {'on' if fair_share else 'off'}"
        ):
            fleet.run_until(float(second))
            fleet.submit(b, "B", 1)
        fleet.run_until(float(args.flood_seconds) + args.job_seconds * 3)
        b_waits = fleet.waits.get("B", [])
        fleet.close()
    return {"fair_share": fair_share, "b_jobs_started": len(b_waits), "b_wait_s": _stats(b_waits)}


def shares(args: argparse.Namespace, weights: tuple[int, int], fair_share: bool = True) -> dict[str, Any]:
    """Two tenants that both keep work queued: their share of the fleet's busy time."""
    before = [0.0, 0.0]
    for _ in _fair_share(fair_share):
        fleet = VirtualFleet(args.workers, args.job_seconds)
        first, second = _tenant("share-1", weights[0]), _tenant("share-2", weights[1])
        jobs = int(
            (args.share_seconds + 3 * args.job_seconds) / args.job_seconds * args.workers
        )  # never drained
        fleet.submit(first, "1", jobs)
        fleet.submit(second, "2", jobs)
        fleet.offer_all()
        # The first tenant's submit took the whole idle fleet; shares are measured once its first
        # jobs have ended (two job lengths in), as slots free up.
        warm_up = int(2 * args.job_seconds)
        steps = tqdm(range(1, warm_up + args.share_seconds + 1), desc=f"shares {weights[0]}:{weights[1]}")
        for second_ in steps:
            fleet.run_until(float(second_))
            if second_ == warm_up:
                before = [fleet.busy_seconds["1"], fleet.busy_seconds["2"]]
        busy = [fleet.busy_seconds["1"] - before[0], fleet.busy_seconds["2"] - before[1]]
        fleet.close()
    total = sum(busy) or 1.0
    measured = [value / total for value in busy]
    wanted = [weight / sum(weights) for weight in weights]
    # Jain's index over each tenant's share relative to its weight's share: 1.0 is exactly fair.
    normalised = [m / w for m, w in zip(measured, wanted, strict=True)]
    jain = sum(normalised) ** 2 / (len(normalised) * sum(x * x for x in normalised))
    return {
        "weights": list(weights),
        "share": [round(m, 4) for m in measured],
        "wanted": [round(w, 4) for w in wanted],
        "off_by": round(max(abs(m - w) for m, w in zip(measured, wanted, strict=True)), 4),
        "jain_index": round(jain, 4),
    }


def limits(args: argparse.Namespace, enforced: bool) -> dict[str, Any]:
    """`--limit-jobs` jobs over `--keys` keys, each limited to `--key-limit` running (when enforced)."""
    fleet = VirtualFleet(args.limit_workers, args.job_seconds)
    tenant = _tenant("limits")
    per_key = args.limit_jobs // args.keys
    for index in range(args.keys):
        fleet.submit(tenant, "L", per_key, f"key-{index}", args.key_limit if enforced else None)
    fleet.offer_all()
    allowed = min(args.limit_workers, args.keys * args.key_limit)
    start, busy_at_start = fleet.now, sum(fleet.busy_seconds.values())
    progress = tqdm(desc=f"limits {'on' if enforced else 'off'}", total=args.limit_jobs)
    done_before = 0
    while fleet.completions:
        fleet.run_until(fleet.now + 1.0)
        done = args.limit_jobs - len(fleet.running) - _pending()
        progress.update(done - done_before)
        done_before = done
        if _pending() == 0:
            break  # the tail, with nothing left to start, says nothing about the limits
    progress.close()
    elapsed = fleet.now - start
    used = (sum(fleet.busy_seconds.values()) - busy_at_start) / (elapsed * allowed) if elapsed else 0.0
    most = max(fleet.most_running_by_key.values(), default=0)
    violations = sum(1 for count in fleet.most_running_by_key.values() if count > args.key_limit)
    fleet.close()
    return {
        "limits": enforced,
        "allowed_concurrency": allowed,
        "most_running_of_a_key": most,
        "keys_past_their_limit": violations,
        "use_of_allowed": round(used, 4),
    }


def _pending() -> int:
    from jobqueue.models import Job, JobStatus

    return Job.objects.filter(status=JobStatus.PENDING).count()


def _start_database(data_dir: Path) -> Callable[[], None]:
    postgres, redis = EmbeddedPostgres(data_dir, free_port()), EmbeddedRedis(data_dir, free_port())
    postgres.start()
    redis.start()
    os.environ.update(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis.url,
        DJANGO_SETTINGS_MODULE="settings.base",
        JOBQUEUE_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import dispatch.assignment

    # The fleet reads its assignments from the database; nothing consumes workers' queues here.
    dispatch.assignment.publish_assignments = lambda assignments: None

    def stop() -> None:
        from django.db import connections

        connections.close_all()
        redis.stop()
        postgres.stop()

    return stop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, default=100, help="the fleet of the flood and shares scenarios"
    )
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--flood-backlog", type=int, default=10_000)
    parser.add_argument("--flood-seconds", type=int, default=60)
    parser.add_argument("--share-seconds", type=int, default=30)
    parser.add_argument("--limit-workers", type=int, default=250)
    parser.add_argument("--limit-jobs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--key-limit", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sched-bench-") as data_dir:
        stop = _start_database(Path(data_dir))
        try:
            result = {
                "machine": machine_facts(),
                "args": vars(args),
                "flood": [flood(args, fair_share=True), flood(args, fair_share=False)],
                "shares": [
                    shares(args, (1, 1)),
                    shares(args, (3, 1)),
                    shares(args, (3, 1), fair_share=False),
                ],
                "limits": [limits(args, enforced=True), limits(args, enforced=False)],
            }
        finally:
            stop()
    _print_table(result, args)
    save_result("scheduling", result)


def _print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nFlood: A queues {args.flood_backlog} jobs, B submits 1/s; {args.workers} workers, jobs of {args.job_seconds:g} s"
    )
    print(f"{'fair share':>10} {'B started':>10} {'B wait p50 s':>13} {'B wait p95 s':>13}")
    for row in result["flood"]:
        wait = row["b_wait_s"]
        print(
            f"{'on' if row['fair_share'] else 'off':>10} {row['b_jobs_started']:>10} {_s(wait['p50']):>13} {_s(wait['p95']):>13}"
        )
    print("\nShares of the fleet's busy time, two saturating tenants")
    print(f"{'weights':>8} {'share':>16} {'wanted':>16} {'off by':>7} {'Jain':>6}")
    for row in result["shares"]:
        weights = ":".join(map(str, row["weights"]))
        print(
            f"{weights:>8} {row['share']!s:>16} {row['wanted']!s:>16} {row['off_by']:>7} {row['jain_index']:>6}"
        )
    print(
        f"\nLimits: {args.limit_jobs} jobs over {args.keys} keys, limit {args.key_limit}; {args.limit_workers} workers"
    )
    print(
        f"{'limits':>7} {'allowed':>8} {'most of a key':>14} {'keys past limit':>16} {'use of allowed':>15}"
    )
    for row in result["limits"]:
        print(
            f"{'on' if row['limits'] else 'off':>7} {row['allowed_concurrency']:>8} {row['most_running_of_a_key']:>14}"
            f" {row['keys_past_their_limit']:>16} {row['use_of_allowed']:>15.1%}"
        )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
