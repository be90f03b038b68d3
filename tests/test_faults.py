"""Faults with real processes on servers of the test's own: nothing lost, nothing run twice."""

from __future__ import annotations

import signal

import pytest
from rest_framework.test import APIClient

from jobqueue.models import Job, JobExecution
from jobqueue.sweeps import dispatch_sweep, recover_lost_jobs
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS_PER_PHASE = 100  # with the outage phase, over 200 jobs


def _all_completed(job_ids: list[str]) -> bool:
    return Job.objects.filter(pk__in=job_ids, status="completed").count() == len(job_ids)


def test_jobs_accepted_while_the_broker_is_down_complete_after_it_restarts_empty(
    api: APIClient, private_broker, private_control_worker, gpu_worker
):
    gpu_worker(broker_url=private_broker.url)
    body = {"type": "simulation", "payload": {"duration": 0.05}}
    before = [api.post("/api/jobs", body, format="json").json()["job_id"] for _ in range(JOBS_PER_PHASE)]
    wait_for(lambda: _all_completed(before), timeout=180, what="the first jobs")

    private_broker.server.stop()  # no persistence: everything queued in it is gone
    during = []
    for _ in range(10):
        response = api.post("/api/jobs", body, format="json")
        assert response.status_code == 201  # durable in Postgres; the broker is not needed to accept
        during.append(response.json()["job_id"])
    private_broker.restart_empty()
    after = [api.post("/api/jobs", body, format="json").json()["job_id"] for _ in range(JOBS_PER_PHASE)]

    def settled() -> bool:
        dispatch_sweep()
        recover_lost_jobs()
        return _all_completed(before + during + after)

    wait_for(settled, timeout=240, interval=1, what="every job to complete after the restart")
    all_ids = before + during + after
    completed_runs = JobExecution.objects.filter(job_id__in=all_ids, outcome="completed").count()
    assert completed_runs == len(all_ids)  # each job ran to completion exactly once
    undelivered = JobExecution.objects.filter(job_id__in=during, outcome="lost", error__code="NOT_DELIVERED")
    assert undelivered.exists()  # the outage really hit an assignment, which went back to the queue


def test_a_worker_killed_under_load_loses_nothing_and_runs_nothing_twice(
    api: APIClient, gpu_worker, settings
):
    settings.WORKER_OFFLINE_AFTER_SECONDS = 2  # the lease, for this test's in-process sweeps
    victim = gpu_worker(slots=2)
    gpu_worker(slots=2)
    body = {"type": "simulation", "payload": {"duration": 0.1, "steps": 2}}
    job_ids = [api.post("/api/jobs", body, format="json").json()["job_id"] for _ in range(200)]
    wait_for(
        lambda: Job.objects.filter(pk__in=job_ids, status="completed").count() >= 40,
        timeout=180,
        what="the run to be under way",
    )

    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(10)

    def settled() -> bool:
        recover_lost_jobs()
        dispatch_sweep()
        return _all_completed(job_ids)

    wait_for(settled, timeout=240, interval=1, what="every job to complete")
    completed_runs = JobExecution.objects.filter(job_id__in=job_ids, outcome="completed").count()
    assert completed_runs == len(job_ids)
    assert JobExecution.objects.filter(
        job_id__in=job_ids, outcome="lost"
    ).exists()  # the kill hit running jobs
