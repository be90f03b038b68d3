"""Dispatch's order and limits over random workloads (Hypothesis), driven against Postgres: jobs of
several tenants, priorities, weights and concurrency keys with limits, run to the end on a few
workers, each completion refilling its worker as a report does (docs/scheduling.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Tenant
from dispatch.assignment import dispatch_all
from dispatch.reports import report_succeeded
from jobqueue.models import ACTIVE_STATUSES, Job, JobStatus
from machines.models import Worker, WorkerCredential
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Spec:
    tenant: int
    priority: int
    key: str


@dataclass(frozen=True)
class Workload:
    weights: tuple[int, ...]
    tenant_limits: tuple[int | None, ...]
    key_limits: dict[str, int]
    jobs: tuple[Spec, ...]
    workers: int


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    tenants = draw(st.integers(1, 3))
    keys = draw(st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.integers(1, 2), max_size=3))
    job = st.builds(
        Spec,
        tenant=st.integers(0, tenants - 1),
        priority=st.sampled_from([10, 50, 90]),
        key=st.sampled_from(["", *keys]),
    )
    return Workload(
        weights=tuple(draw(st.lists(st.integers(1, 3), min_size=tenants, max_size=tenants))),
        tenant_limits=tuple(
            draw(st.lists(st.none() | st.integers(1, 3), min_size=tenants, max_size=tenants))
        ),
        key_limits=keys,
        jobs=tuple(draw(st.lists(job, min_size=1, max_size=14))),
        workers=draw(st.integers(1, 3)),
    )


def _blocked(job: Job, running: list[Job], tenants: dict[int, Tenant]) -> bool:
    """Whether a limit holds the pending `job`, given the jobs running now."""
    limit = tenants[job.tenant_id].max_running_jobs
    if limit is not None and sum(r.tenant_id == job.tenant_id for r in running) >= limit:
        return True
    same_key = sum(r.tenant_id == job.tenant_id and r.concurrency_key == job.concurrency_key for r in running)
    return (
        bool(job.concurrency_key) and job.concurrency_limit is not None and same_key >= job.concurrency_limit
    )


def _check_step(started: list[Job], was_pending: list[Job], tenants: dict[int, Tenant]) -> None:
    running = list(Job.objects.filter(status__in=ACTIVE_STATUSES))
    # No limit is ever passed.
    for tenant_id, count in Counter(r.tenant_id for r in running).items():
        limit = tenants[tenant_id].max_running_jobs
        assert limit is None or count <= limit, (tenant_id, count, limit)
    for (tenant_id, key), count in Counter((r.tenant_id, r.concurrency_key) for r in running).items():
        limits = {
            r.concurrency_limit for r in running if (r.tenant_id, r.concurrency_key) == (tenant_id, key)
        }
        assert not key or count <= min(limits), (key, count, limits)
    # Priority across levels: nothing started while a higher one could have.
    started_ids = {job.pk for job in started}
    still_pending = [job for job in was_pending if job.pk not in started_ids]
    for job in started:
        passed_over = [
            p for p in still_pending if p.priority > job.priority and not _blocked(p, running, tenants)
        ]
        assert not passed_over, (job.priority, [p.priority for p in passed_over])


def _run(workload: Workload) -> list[Job]:
    tenants = [
        Tenant.objects.create(name=f"t{index}", fair_share_weight=weight, max_running_jobs=limit)
        for index, (weight, limit) in enumerate(zip(workload.weights, workload.tenant_limits, strict=True))
    ]
    by_id = {tenant.pk: tenant for tenant in tenants}
    for spec in workload.jobs:
        make_job(
            tenant_id=tenants[spec.tenant].pk,
            priority=spec.priority,
            concurrency_key=spec.key,
            concurrency_limit=workload.key_limits.get(spec.key) if spec.key else None,
        )
    for _ in range(workload.workers):
        make_worker()
    start_order: list[Job] = []
    for _ in range(4 * len(workload.jobs) + 4):  # each round ends at least one job: bounded
        was_pending = list(Job.objects.filter(status=JobStatus.PENDING))
        seen = {job.pk for job in start_order}
        dispatch_all()
        started = [job for job in Job.objects.filter(status__in=ACTIVE_STATUSES) if job.pk not in seen]
        _check_step(started, was_pending, by_id)
        start_order += sorted(started, key=lambda job: job.assigned_at)
        oldest = Job.objects.filter(status__in=ACTIVE_STATUSES).order_by("assigned_at").first()
        if oldest is None:
            break
        was_pending = list(Job.objects.filter(status=JobStatus.PENDING))
        seen = {job.pk for job in start_order}
        assert report_succeeded(oldest.id, oldest.attempt, {})  # refills its worker, as a report does
        started = [job for job in Job.objects.filter(status__in=ACTIVE_STATUSES) if job.pk not in seen]
        _check_step(started, was_pending, by_id)
        start_order += started
    return start_order


def _clean() -> None:
    Job.objects.all().delete()
    Worker.objects.all().delete()
    WorkerCredential.objects.all().delete()
    Tenant.objects.exclude(name="default").delete()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workload=workloads())
def test_every_job_runs_in_order_within_its_limits(workload: Workload):
    try:
        start_order = _run(workload)

        # No starvation: every job ran, once.
        assert Job.objects.exclude(status=JobStatus.COMPLETED).count() == 0
        assert len(start_order) == len(workload.jobs) == len({job.pk for job in start_order})
        # Each tenant's own order: jobs of one tenant, priority and key start in submission order.
        for group in {(job.tenant_id, job.priority, job.concurrency_key) for job in start_order}:
            seqs = [
                job.submit_seq
                for job in start_order
                if (job.tenant_id, job.priority, job.concurrency_key) == group
            ]
            assert seqs == sorted(seqs), group
    finally:
        _clean()
