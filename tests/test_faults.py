"""Faults with real processes on servers of the test's own: nothing lost, nothing run twice."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import requests
from rest_framework.test import APIClient

from jobqueue.models import Job, JobExecution
from jobqueue.sweeps import dispatch_sweep, recover_lost_jobs
from tests.conftest import PrivateStack, spawn_gpu_worker, stop_process, wait_for

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


POSTGRES_OUTAGE_S = 4.0  # far longer than a job, so every job running at the stop reports into the outage


def test_a_postgres_restart_while_workers_report_loses_no_report(private_stack: PrivateStack):
    database, headers = private_stack.database, {"x-api-key": private_stack.api_key}
    worker_ids = [f"pg-fault-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    workers = [
        spawn_gpu_worker(private_stack.env, private_stack.broker.url, worker_id=worker_id, slots=2)
        for worker_id in worker_ids
    ]
    try:
        registered = "SELECT count(*) FROM machines_worker WHERE id = ANY(%s)"
        wait_for(lambda: database.scalar(registered, (worker_ids,)) == 2, timeout=60, what="workers")
        body = {"type": "simulation", "payload": {"duration": 0.1, "steps": 2}}
        job_ids = []
        for _ in range(200):
            response = requests.post(
                f"{private_stack.api_url}/api/jobs", json=body, headers=headers, timeout=30
            )
            assert response.status_code == 201, response.text
            job_ids.append(response.json()["job_id"])
        completed = "SELECT count(*) FROM jobqueue_job WHERE status = 'completed'"
        wait_for(lambda: database.scalar(completed) >= 30, timeout=180, what="the run to be under way")

        active = database.scalar("SELECT count(*) FROM jobqueue_job WHERE status IN ('assigned', 'running')")
        database.server.stop()
        outage_ends = time.monotonic() + POSTGRES_OUTAGE_S
        for method, path in (
            ("get", "/api/jobs"),
            ("post", "/api/jobs"),
            ("get", f"/api/jobs/{job_ids[-1]}"),
        ):
            response = requests.request(
                method, f"{private_stack.api_url}{path}", json=body, headers=headers, timeout=30
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert response.headers["Retry-After"]
            assert "Traceback" not in response.text
        time.sleep(max(0.0, outage_ends - time.monotonic()))
        database.server.start()

        wait_for(
            lambda: database.scalar(completed) == len(job_ids), timeout=240, interval=1, what="every job"
        )
        assert active > 0  # workers were running jobs, whose reports met the outage and were retried
        executions = "SELECT count(*) FROM jobqueue_jobexecution WHERE outcome = %s"
        assert database.scalar(executions, ("completed",)) == len(job_ids)  # none ran to completion twice
        assert database.scalar(executions, ("lost",)) == 0  # and no attempt was given up on
        listing = requests.get(f"{private_stack.api_url}/api/jobs", headers=headers, timeout=30)
        assert listing.status_code == 200  # the API reconnected
    finally:
        for worker in workers:
            stop_process(worker)
