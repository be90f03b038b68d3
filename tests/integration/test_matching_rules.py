"""Eligibility and liveness are each one rule in several forms (SQL for the dispatcher, querysets,
Python for loaded rows and for "why is this job waiting"): over a grid of jobs and workers, every
form gives the same answer."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from dispatch.matching import JOB_MATCHES_WORKER, TAKES_WORK, eligibility, explain, takes_work
from jobqueue.models import Job
from machines.models import LIVE_WORKER_SQL, Worker, WorkerStatus, heard_since
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _jobs(other: Tenant) -> list[Job]:
    jobs = []
    for type_, caps, models, memory, pool in itertools.product(
        ("simulation", "comfyui"), ((), ("fp16",)), ((), ("sdxl",)), (None, 40), (None, "fast")
    ):
        jobs.append(make_job(type=type_, capabilities=caps, models=models, gpu_memory_gb=memory, pool=pool))
    for customer, strict, tenant in (
        ("acme", False, Tenant.default()),
        ("acme", True, Tenant.default()),
        ("globex", False, Tenant.default()),
        ("acme", False, other),  # another tenant's customer of the same id
        ("acme", True, other),
    ):
        job = make_job()
        Job.objects.filter(pk=job.pk).update(
            customer_id=customer, requires_dedicated_worker=strict, tenant=tenant
        )
        jobs.append(Job.objects.get(pk=job.pk))
    return jobs


def _workers(other: Tenant) -> list[Worker]:
    workers = [
        make_worker(),
        make_worker(
            job_types=("simulation", "comfyui"), capabilities=("fp16",), models=("sdxl",), gpu_memory_gb=48
        ),
        make_worker(pool="fast", gpu_memory_gb=80, capabilities=("fp16",)),
    ]
    for changes in (
        {"draining": True},
        {"engine_healthy": False},
        {"customer_allowlist": ["acme"], "customers_tenant": Tenant.default()},
        {"customer_allowlist": ["acme"], "customers_tenant": other},
        {"customer_denylist": ["globex"]},
        {"status": WorkerStatus.OFFLINE},
        {"last_seen_at": timezone.now() - timedelta(hours=1)},
    ):
        worker = make_worker(job_types=("simulation", "comfyui"))
        Worker.objects.filter(pk=worker.pk).update(**changes)
        workers.append(Worker.objects.get(pk=worker.pk))
    return workers


def _sql_pairs(condition: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT j.id::text, w.id FROM jobqueue_job j, machines_worker w WHERE j.status = 'pending' AND {condition}",
            {"heard_since": heard_since()},
        )
        return set(cursor.fetchall())


def test_the_dispatchers_sql_and_the_waiting_explanation_agree_on_every_pair():
    other = Tenant.objects.create(name="other")
    jobs, workers = _jobs(other), _workers(other)
    in_sql = _sql_pairs(f"{JOB_MATCHES_WORKER} AND {TAKES_WORK}")
    in_python = {
        (str(job.pk), worker.pk)
        for job in jobs
        for worker in workers
        if takes_work(worker) and explain(job, [worker])["eligible_workers"] == 1
    }
    assert in_sql == in_python
    assert 0 < len(in_sql) < len(jobs) * len(workers)  # the grid has both answers


def test_a_waiting_job_is_explained_by_the_first_rule_every_live_worker_fails():
    [job] = [make_job(type="comfyui", gpu_memory_gb=200)]
    make_worker(job_types=("comfyui",), gpu_memory_gb=24)
    answer = explain(job)
    assert answer["eligible_workers"] == 0
    assert answer["unmet"]["requirement"] == "gpu_memory_gb"


def test_liveness_is_the_same_in_sql_in_querysets_and_on_loaded_rows():
    workers = _workers(Tenant.objects.create(name="other"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT w.id FROM machines_worker w WHERE {LIVE_WORKER_SQL}", {"heard_since": heard_since()}
        )
        in_sql = {row[0] for row in cursor.fetchall()}
    in_queryset = set(Worker.objects.live().values_list("id", flat=True))
    on_rows = {worker.pk for worker in workers if worker.is_live}
    assert in_sql == in_queryset == on_rows
    assert 0 < len(on_rows) < len(workers)


def test_a_dedicated_worker_serves_its_credentials_tenants_customer_and_not_anothers_of_that_id():
    other = Tenant.objects.create(name="other")
    jobs = {}
    for tenant in (Tenant.default(), other):
        job = make_job()
        Job.objects.filter(pk=job.pk).update(
            customer_id="acme", requires_dedicated_worker=True, tenant=tenant
        )
        jobs[tenant.name] = str(job.pk)
    worker = make_worker()
    Worker.objects.filter(pk=worker.pk).update(customer_allowlist=["acme"], customers_tenant=other)

    pairs = _sql_pairs(f"{JOB_MATCHES_WORKER} AND {TAKES_WORK}")

    assert pairs == {(jobs["other"], worker.pk)}
    assert explain(Job.objects.get(pk=jobs["default"]))["unmet"]["requirement"] == "customer"


def test_a_pending_jobs_bounded_eligibility_says_what_the_explanation_says():
    other = Tenant.objects.create(name="other")
    jobs, _ = _jobs(other), _workers(other)
    for job in jobs:
        bounded, full = eligibility(job), explain(job)
        assert (bounded["eligible_workers"], bounded["unmet"]) == (full["eligible_workers"], full["unmet"])
        assert bounded["eligible_workers_exact"]


def test_eligible_workers_are_counted_up_to_the_bound(settings):
    settings.EXPLAIN_WORKERS_MAX = 2
    job = make_job()
    for _ in range(3):
        make_worker()

    assert eligibility(job) == {"eligible_workers": 2, "eligible_workers_exact": False, "unmet": None}
