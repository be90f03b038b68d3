"""Fair share between tenants and limits per key, driven directly against Postgres (docs/scheduling.md)."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Tenant
from dispatch.assignment import dispatch_all, fill_worker
from dispatch.reports import report_failed, report_succeeded, worker_lost
from dispatch.scheduling import held_by_limit
from jobqueue.cancellation import cancel_job
from jobqueue.models import ACTIVE_STATUSES, Job, JobStatus, RunningCount
from tests.conftest import run_in_threads
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _tenant(name: str, **fields) -> Tenant:
    return Tenant.objects.create(name=name, **fields)


def _running(**filters) -> int:
    return Job.objects.filter(status__in=ACTIVE_STATUSES, **filters).count()


def _finish(job: Job) -> None:
    assert report_succeeded(job.id, job.attempt, {"ok": True})


def _counted() -> dict[tuple[int, str], int]:
    return {(c.tenant_id, c.place): c.running for c in RunningCount.objects.all()}


def _actual_counts() -> dict[tuple[int, str], int]:
    """What the running counts should say, recounted from the jobs."""
    counts: dict[tuple[int, str], int] = {}
    for job in Job.objects.filter(status__in=ACTIVE_STATUSES):
        for place in job.counted_in:
            counts[(job.tenant_id, place)] = counts.get((job.tenant_id, place), 0) + 1
    return counts


# --- fair share ------------------------------------------------------------------------------------


def test_a_light_tenants_job_goes_before_a_flooding_tenants_backlog():
    flood, light = _tenant("flood"), _tenant("light")
    backlog = [make_job(tenant_id=flood.pk) for _ in range(20)]
    workers = [make_worker() for _ in range(2)]
    for worker in workers:
        fill_worker(worker.id)
    late = make_job(tenant_id=light.pk)  # submitted after the whole backlog, at the same priority

    _finish(Job.objects.get(pk=backlog[0].pk))  # frees a worker, which takes its next job

    assert Job.objects.get(pk=late.pk).status == JobStatus.ASSIGNED
    assert Job.objects.get(pk=backlog[2].pk).status == JobStatus.PENDING


def test_without_fair_share_the_oldest_work_goes_first_whoever_submitted_it(settings):
    settings.SCHEDULING_FAIR_SHARE = False
    flood, light = _tenant("flood"), _tenant("light")
    backlog = [make_job(tenant_id=flood.pk) for _ in range(5)]
    workers = [make_worker() for _ in range(2)]
    for worker in workers:
        fill_worker(worker.id)
    late = make_job(tenant_id=light.pk)

    _finish(Job.objects.get(pk=backlog[0].pk))

    assert Job.objects.get(pk=backlog[2].pk).status == JobStatus.ASSIGNED
    assert Job.objects.get(pk=late.pk).status == JobStatus.PENDING


def test_tenants_share_the_fleet_by_weight_and_each_keeps_its_own_order():
    heavy, light = _tenant("heavy", fair_share_weight=3), _tenant("light")
    heavy_jobs = [make_job(tenant_id=heavy.pk) for _ in range(20)]
    light_jobs = [make_job(tenant_id=light.pk) for _ in range(20)]
    for _ in range(8):
        fill_worker(make_worker().id)

    assert (_running(tenant=heavy), _running(tenant=light)) == (6, 2)
    started = {str(j.id) for j in Job.objects.filter(status__in=ACTIVE_STATUSES)}
    assert started == {str(j.id) for j in heavy_jobs[:6] + light_jobs[:2]}  # each its oldest first

    for _ in range(3):  # as jobs finish, the freed slots keep the ratio
        for job in list(Job.objects.filter(status__in=ACTIVE_STATUSES).order_by("assigned_at")[:4]):
            _finish(job)
        assert (_running(tenant=heavy), _running(tenant=light)) == (6, 2)


def test_one_offer_of_several_slots_is_shared_by_weight():
    heavy, light = _tenant("heavy", fair_share_weight=3), _tenant("light")
    for _ in range(10):
        make_job(tenant_id=light.pk)
        make_job(tenant_id=heavy.pk)

    fill_worker(make_worker(slots=4).id)

    assert (_running(tenant=heavy), _running(tenant=light)) == (3, 1)


def test_priority_goes_before_fair_share():
    flood, light = _tenant("flood"), _tenant("light")
    urgent = [make_job(tenant_id=flood.pk, priority=90) for _ in range(3)]
    make_job(tenant_id=light.pk, priority=50)

    fill_worker(make_worker(slots=3).id)

    assert {str(j.id) for j in Job.objects.filter(status__in=ACTIVE_STATUSES)} == {str(j.id) for j in urgent}


# --- limits ----------------------------------------------------------------------------------------


def test_jobs_of_a_concurrency_key_never_run_past_its_limit():
    held = [make_job(concurrency_key="user-42", concurrency_limit=2) for _ in range(5)]
    other = make_job()
    workers = [make_worker() for _ in range(4)]
    dispatch_all()

    assert _running(concurrency_key="user-42") == 2
    assert Job.objects.get(pk=other.pk).status == JobStatus.ASSIGNED  # a free worker takes other work
    assert len(workers) - _running() == 1  # and one stays free rather than pass the limit

    _finish(Job.objects.filter(concurrency_key="user-42", status=JobStatus.ASSIGNED).first())
    dispatch_all()
    assert _running(concurrency_key="user-42") == 2
    assert Job.objects.filter(pk__in=[j.pk for j in held], status=JobStatus.COMPLETED).count() == 1


def test_a_key_without_a_limit_of_its_own_takes_its_tenants_limit_for_the_key():
    tenant = _tenant("configured", concurrency_limits={"render-farm": 1})
    job = make_job(tenant_id=tenant.pk, concurrency_key="render-farm")
    make_job(tenant_id=tenant.pk, concurrency_key="render-farm")
    for _ in range(2):
        fill_worker(make_worker().id)

    assert Job.objects.get(pk=job.pk).concurrency_limit == 1
    assert _running(concurrency_key="render-farm") == 1


def test_a_tenants_running_limit_holds_its_jobs_and_says_so():
    capped = _tenant("capped", max_running_jobs=2)
    jobs = [make_job(tenant_id=capped.pk) for _ in range(4)]
    for _ in range(3):
        fill_worker(make_worker().id)

    assert _running(tenant=capped) == 2
    waiting = Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.PENDING).first()
    assert held_by_limit(waiting) == {
        "place": "tenant",
        "message": "its tenant at its limit (2 of 2 running)",
    }


def test_why_a_job_waits_names_its_concurrency_key_at_its_limit(api):
    make_job(concurrency_key="user-42", concurrency_limit=1)
    fill_worker(make_worker().id)
    waiting = make_job(concurrency_key="user-42", concurrency_limit=1)
    make_worker()

    eligibility = api.get(f"/api/jobs/{waiting.id}").json()["job"]["eligibility"]

    assert eligibility["eligible_workers"] == 2  # its requirements are met: the limit holds it
    assert eligibility["held_by_limit"]["message"] == "concurrency_key user-42 at its limit (1 of 1 running)"


def test_a_limit_set_on_a_busy_tenant_counts_what_already_runs():
    tenant = _tenant("busy")
    for _ in range(3):
        make_job(tenant_id=tenant.pk)
    for _ in range(2):
        fill_worker(make_worker().id)

    tenant.max_running_jobs = 2
    tenant.save()
    _finish(Job.objects.filter(tenant=tenant, status=JobStatus.ASSIGNED).first())  # frees one place

    assert _running(tenant=tenant) == 2
    assert _counted() == {(tenant.pk, "tenant"): 2} == _actual_counts()
    tenant.max_running_jobs = None
    tenant.save()
    assert _counted() == {}


def test_every_way_a_job_stops_running_gives_its_place_back():
    jobs = [make_job(concurrency_key="k", concurrency_limit=10, max_retries=0) for _ in range(5)]
    for _ in range(5):
        fill_worker(make_worker().id)
    done, failed, lost, cancelled, deleted = (Job.objects.get(pk=j.pk) for j in jobs)

    _finish(done)
    assert report_failed(failed.id, failed.attempt, {"code": "X", "message": "no", "class": "permanent"})
    assert worker_lost(lost.id, lost.attempt, "gone")
    cancel_job(cancelled.id, reason="test")
    Job.objects.filter(pk=deleted.pk).delete()

    assert _actual_counts() == {(Tenant.default().pk, "key:k"): _running(concurrency_key="k")}
    assert _counted().get((Tenant.default().pk, "key:k"), 0) == _running(concurrency_key="k")


def test_the_database_refuses_a_start_past_a_limit_whoever_asks():
    first = make_job(concurrency_key="k", concurrency_limit=1)
    fill_worker(make_worker().id)
    second = make_job(concurrency_key="k", concurrency_limit=1)

    with connection.cursor() as cursor:  # as a dispatcher that read the counts before the first start
        cursor.execute("UPDATE jobqueue_job SET status = 'assigned' WHERE id = %s", [second.pk])
        assert cursor.rowcount == 0
    assert Job.objects.get(pk=second.pk).status == JobStatus.PENDING
    assert Job.objects.get(pk=first.pk).status == JobStatus.ASSIGNED


def test_concurrent_dispatchers_never_pass_a_limit():
    capped = _tenant("capped", max_running_jobs=3)
    for index in range(40):
        make_job(tenant_id=capped.pk, concurrency_key=f"user-{index % 2}", concurrency_limit=2)
    workers = [make_worker(slots=2) for _ in range(12)]

    _, errors = run_in_threads(*[lambda w=w: fill_worker(w.id) for w in workers])

    assert errors == []  # no deadlock: a start never waits for a count another is changing
    assert 1 <= _running(tenant=capped) <= 3
    assert all(_running(concurrency_key=f"user-{i}") <= 2 for i in range(2))
    dispatch_all()  # what a busy count turned away is offered again
    assert _running(tenant=capped) == 3
    assert _counted() == _actual_counts()


def test_a_job_says_its_concurrency_key_and_a_limit_needs_a_key(api):
    submitted = api.post(
        "/api/jobs",
        {"type": "simulation", "concurrency_key": "user-42", "concurrency_limit": 2},
        format="json",
    )
    keyless = api.post("/api/jobs", {"type": "simulation", "concurrency_limit": 2}, format="json")

    assert submitted.status_code == 201
    job = api.get(f"/api/jobs/{submitted.json()['job_id']}").json()["job"]
    assert (job["concurrency_key"], job["concurrency_limit"]) == ("user-42", 2)
    assert keyless.status_code == 400 and keyless.json()["error"]["field"] == "concurrency_limit"
    assert Job.objects.count() == 1
