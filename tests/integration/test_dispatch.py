"""The dispatcher, driven directly against Postgres (no worker processes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.assignment import dispatch_all, dispatch_jobs, fill_worker
from dispatch.reports import report_succeeded
from jobqueue.models import Job, JobExecution, JobStatus
from tests.conftest import run_in_threads
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def run_one_job_at_a_time(worker) -> list[str]:
    """Let the worker take and finish jobs one by one; return job ids in the order it got them.

    Each completion offers the freed slot the next job in the same transaction."""
    order = []
    fill_worker(worker.id)
    while job := Job.objects.filter(worker_id=worker.id, status=JobStatus.ASSIGNED).first():
        order.append(str(job.id))
        assert report_succeeded(job.id, job.attempt, {"ok": True})
    return order


def test_jobs_run_by_priority_then_exact_submission_order():
    jobs = [make_job(priority=p) for p in (10, 90, 50, 90, 0, 50, 0)]
    worker = make_worker()

    order = run_one_job_at_a_time(worker)

    expected = [j.id for j in sorted(jobs, key=lambda j: (-j.priority, j.submit_seq))]
    assert order == [str(i) for i in expected]


def test_priority_zero_stays_zero_and_runs_last():
    low = make_job(priority=0)
    default = make_job()
    assert Job.objects.get(pk=low.pk).priority == 0
    order = run_one_job_at_a_time(make_worker())
    assert order == [str(default.id), str(low.id)]


def test_older_workflow_steps_run_before_newer_work_at_the_same_priority():
    newer_job = make_job(priority=50)
    old_workflow_step = make_job(priority=50, workflow_datetime=timezone.now() - timedelta(hours=1))
    urgent = make_job(priority=10, workflow_priority=80)

    order = run_one_job_at_a_time(make_worker())

    assert order == [str(urgent.id), str(old_workflow_step.id), str(newer_job.id)]


def test_job_needing_more_gpu_memory_never_reaches_a_smaller_worker():
    big = make_job(gpu_memory_gb=48)
    small_worker = make_worker(gpu_memory_gb=24)
    large_worker = make_worker(gpu_memory_gb=80)

    assert fill_worker(small_worker.id) == []
    assignments = fill_worker(large_worker.id)

    assert [a.job_id for a in assignments] == [str(big.id)]


@pytest.mark.parametrize(
    ("job_kwargs", "worker_kwargs", "eligible"),
    [
        ({"pool": "heavy"}, {"pool": "heavy"}, True),
        ({"pool": "heavy"}, {"pool": "fast-lane"}, False),
        ({}, {"pool": "fast-lane"}, True),
        ({"capabilities": ("upscale",)}, {"capabilities": ("upscale", "sdxl")}, True),
        ({"capabilities": ("upscale", "video")}, {"capabilities": ("upscale",)}, False),
        ({"models": ("flux-dev",)}, {"models": ("flux-dev", "sdxl")}, True),
        ({"models": ("flux-dev",)}, {"models": ("sdxl",)}, False),
        ({"type": "comfyui"}, {"job_types": ("simulation",)}, False),
        ({"gpu_memory_gb": 24}, {"gpu_memory_gb": 24}, True),
    ],
)
def test_a_worker_gets_a_job_only_when_it_meets_every_requirement(job_kwargs, worker_kwargs, eligible):
    job = make_job(**job_kwargs)
    worker = make_worker(**worker_kwargs)

    assignments = fill_worker(worker.id)

    assert bool(assignments) is eligible
    assert Job.objects.get(pk=job.pk).status == (JobStatus.ASSIGNED if eligible else JobStatus.PENDING)


def test_a_worker_is_never_starved_by_jobs_it_cannot_run_ahead_of_it():
    # The replaced system scanned only the top 100 pending jobs; 150 unrunnable ones hid the rest.
    for _ in range(150):
        make_job(priority=90, capabilities=("video",))
    runnable = make_job(priority=1)

    assignments = fill_worker(make_worker().id)

    assert [a.job_id for a in assignments] == [str(runnable.id)]


def test_a_newly_pending_job_finds_a_free_eligible_worker():
    busy_small = make_worker(gpu_memory_gb=8)
    free_large = make_worker(gpu_memory_gb=48)
    job = make_job(gpu_memory_gb=40)

    # submit_job already dispatched on commit
    job.refresh_from_db()
    assert job.status == JobStatus.ASSIGNED
    assert job.worker_id == free_large.id
    assert dispatch_jobs([job.id]) == []
    assert fill_worker(busy_small.id) == []


def test_a_worker_never_gets_more_jobs_than_slots():
    for _ in range(5):
        make_job()
    worker = make_worker(slots=2)

    first = fill_worker(worker.id)
    second = fill_worker(worker.id)

    assert len(first) == 2
    assert second == []
    assert Job.objects.filter(worker_id=worker.id, status=JobStatus.ASSIGNED).count() == 2


def test_offline_or_silent_workers_get_nothing():
    make_job()
    silent = make_worker()
    silent.last_seen_at = timezone.now() - timedelta(minutes=10)
    silent.save()
    offline = make_worker()
    offline.status = "offline"
    offline.save()

    assert fill_worker(silent.id) == []
    assert fill_worker(offline.id) == []


def test_concurrent_dispatchers_never_assign_a_job_twice_or_overfill_a_worker():
    jobs = [make_job(priority=i % 100) for i in range(120)]
    workers = [make_worker(slots=3) for _ in range(10)]

    def dispatcher():
        for _ in range(5):
            dispatch_all()

    _, errors = run_in_threads(*[dispatcher] * 4)

    assert errors == []
    assigned = Job.objects.filter(status=JobStatus.ASSIGNED)
    assert assigned.count() == 30  # 10 workers x 3 slots, each job once
    assert JobExecution.objects.count() == 30
    for worker in workers:
        assert assigned.filter(worker_id=worker.id).count() == 3
    # and the 30 taken are the 30 best
    best = sorted(jobs, key=lambda j: (-j.priority, j.submit_seq))[:30]
    assert set(assigned.values_list("id", flat=True)) == {j.id for j in best}


def test_concurrent_submissions_and_completions_never_deadlock():
    workers = [make_worker(slots=4) for _ in range(2)]

    def submitter():
        for _ in range(20):
            make_job()

    def completer():
        for _ in range(80):
            for job in Job.objects.filter(status=JobStatus.ASSIGNED).order_by("?")[:2]:
                report_succeeded(job.id, job.attempt, {"ok": True})

    _, errors = run_in_threads(*[submitter] * 5, *[completer] * 3)

    assert errors == []
    for worker in workers:
        assert Job.objects.filter(worker_id=worker.id, status=JobStatus.ASSIGNED).count() <= 4
    assert Job.objects.count() == 100


def test_a_heartbeat_that_races_deregistration_does_not_revive_the_worker():
    from dispatch.worker_reports import heartbeats
    from machines.registry import Beat, deregister_worker

    worker = make_worker()
    deregister_worker(worker.id, worker.instance_id)

    assert heartbeats([Beat(worker.id, worker.instance_id, {})]) == []  # not offered work
    worker.refresh_from_db()
    assert worker.status == "offline"
    make_job()
    assert fill_worker(worker.id) == []


def test_an_assignment_that_cannot_be_published_goes_back_to_pending_without_using_a_retry(monkeypatch):
    from core.celery_app import app

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(app, "send_task", broker_down)
    job = make_job()
    worker = make_worker()

    fill_worker(worker.id)  # published after commit, which fails

    job.refresh_from_db()
    assert (job.status, job.retry_count, job.worker_id) == (JobStatus.PENDING, 0, None)
    attempt = job.executions.get()
    assert (attempt.outcome, attempt.error["code"]) == ("lost", "NOT_DELIVERED")
    monkeypatch.undo()
    fill_worker(worker.id)
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.ASSIGNED, 2)


def test_assignments_made_before_the_broker_restarted_are_offered_again():
    from datetime import timedelta

    from dispatch.recovery import recover_after_broker_restart

    worker = make_worker()
    before_restart = make_job()
    fill_worker(worker.id)
    Job.objects.filter(pk=before_restart.pk).update(assigned_at=timezone.now() - timedelta(days=30))

    assert recover_after_broker_restart() == 1
    assert recover_after_broker_restart() == 0

    before_restart.refresh_from_db()
    assert (before_restart.status, before_restart.attempt, before_restart.retry_count) == (
        JobStatus.ASSIGNED,
        2,
        0,
    )
    assert before_restart.executions.get(attempt=1).error["code"] == "NOT_DELIVERED"


def test_a_job_message_carries_its_lease_in_the_body_only():
    import base64
    import json

    from core.redis import redis_client
    from tests.factories import lease_of

    worker = make_worker()
    job = make_job()
    fill_worker(worker.id)

    raw = redis_client().lindex(worker.queue, 0)
    message = json.loads(raw)
    lease = lease_of(job)
    assert lease in base64.b64decode(message["body"]).decode()  # only its worker reads its queue
    assert lease not in json.dumps(message["headers"]) and str(job.pk) in message["headers"]["kwargsrepr"]


def test_a_worker_registering_as_a_new_instance_loses_only_its_predecessors_running_attempt():
    from dispatch.reports import report_started
    from dispatch.worker_reports import register_worker

    worker = make_worker()
    running, queued = make_job(), make_job()
    report_started(str(running.pk), 1, worker.id)
    description = {"worker_id": worker.id, "machine_id": worker.machine_id, "job_types": ["simulation"]}

    assert register_worker({**description, "instance_id": worker.instance_id}) is not None  # the same one
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING

    assert register_worker({**description, "instance_id": "restarted"}) is not None
    execution = JobExecution.objects.get(job_id=running.pk, attempt=1)
    assert (execution.outcome, execution.error["code"]) == ("lost", "WORKER_LOST")
    assert Job.objects.get(pk=running.pk).status != JobStatus.RUNNING  # retried
    assert not JobExecution.objects.filter(job_id=queued.pk, outcome="lost").exists()
