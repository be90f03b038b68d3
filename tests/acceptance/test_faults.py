"""Fault injection with real processes, over at least 200 jobs each: nothing lost, nothing run twice.

Each scenario records a tally (submitted, completed, dead-lettered, duplicated, lost) in
`.pytest-data/fault-tallies.jsonl`; duplicates are counted from the simulation connector's journal of
completed runs, not from our own records.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from dispatch.leases import expire_leases, fail_timed_out_jobs
from dispatch.recovery import dispatch_sweep
from jobqueue.models import DeadLetterJob, Job, JobExecution
from tests.conftest import ROOT, PrivateStack, spawn_gpu_worker, stop_processes, tally_faults, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS_PER_PHASE = 100  # with the outage phase, over 200 jobs
SETTLE_TIMEOUT_S = 240
UNACKED_CONTROL_KEY = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_key"]
POSTGRES_OUTAGE_S = 4.0  # far longer than a job, so every job running at the stop reports into the outage


def _submit_all(api: APIClient, bodies: list[dict]) -> list[str]:
    job_ids = []
    for body in bodies:
        response = api.post("/api/jobs", {"type": "simulation", **body}, format="json")
        assert response.status_code == 201, response.json()
        job_ids.append(response.json()["job_id"])
    return job_ids


def _all_finished(job_ids: list[str]) -> bool:
    finished = Job.objects.filter(pk__in=job_ids, status__in=["completed", "failed", "cancelled"])
    return finished.count() == len(job_ids)


def _tally(scenario: str, job_ids: list[str], journal: Path):
    statuses = {
        str(pk): status for pk, status in Job.objects.filter(pk__in=job_ids).values_list("id", "status")
    }
    dead_lettered = DeadLetterJob.objects.filter(job_id__in=job_ids, requeued_at=None).count()
    lost = JobExecution.objects.filter(job_id__in=job_ids, outcome="lost").values_list("job_id", "attempt")
    lost_attempts = {(str(job_id), attempt) for job_id, attempt in lost}
    return tally_faults(scenario, statuses, dead_lettered, journal, lost_attempts)


def _runs_twice(journal: Path) -> str:
    """Each job the journal shows run more than once, with its attempts as the control plane saw them."""
    runs = [line.split() for line in journal.read_text().splitlines()]
    twice = {job_id for job_id, _ in runs if sum(other == job_id for other, _ in runs) > 1}
    attempts = JobExecution.objects.filter(job_id__in=twice).order_by("job_id", "attempt")
    return "\n".join(
        f"{a.job_id} attempt {a.attempt} on {a.worker_id}: {a.outcome} {a.error} assigned {a.assigned_at} "
        f"started {a.started_at} finished {a.finished_at}"
        for a in attempts
    )


def test_a_worker_killed_under_load_loses_nothing_and_runs_nothing_twice(
    api: APIClient, gpu_worker, settings, journal
):
    settings.WORKER_OFFLINE_AFTER_SECONDS = 2  # the lease, for this test's in-process sweeps
    victim = gpu_worker(slots=2)
    gpu_worker(slots=2)
    job_ids = _submit_all(api, [{"payload": {"duration": 0.1, "steps": 2}}] * 200)
    wait_for(
        lambda: Job.objects.filter(pk__in=job_ids, status="completed").count() >= 40,
        timeout=180,
        what="the run to be under way",
    )

    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(10)

    def settled() -> bool:
        expire_leases()
        dispatch_sweep()
        return _all_finished(job_ids)

    wait_for(settled, timeout=SETTLE_TIMEOUT_S, interval=1, what="every job to finish")
    tally = _tally("1. kill -9 a GPU worker under load", job_ids, journal)
    assert (tally.completed, tally.duplicated, tally.lost) == (200, 0, 0)
    assert JobExecution.objects.filter(job_id__in=job_ids, outcome="completed").count() == 200
    assert JobExecution.objects.filter(job_id__in=job_ids, outcome="lost").exists()  # the kill hit jobs


def test_jobs_accepted_while_the_broker_is_down_complete_after_it_restarts_empty(
    api: APIClient, private_broker, private_control_worker, gpu_worker, journal, settings
):
    settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS = 3  # for this test's in-process sweeps
    worker = gpu_worker(broker_url=private_broker.url, slots=2)
    body = {"payload": {"duration": 0.05}}
    before = _submit_all(api, [body] * JOBS_PER_PHASE)
    wait_for(
        lambda: Job.objects.filter(pk__in=before, status="completed").count() >= JOBS_PER_PHASE // 2,
        timeout=180,
        what="the first jobs to be under way",
    )

    in_flight = Job.objects.filter(pk__in=before).exclude(status="completed").count()
    private_broker.server.stop()  # mid-run, no persistence: everything queued in it is gone
    during = _submit_all(api, [body] * 10)  # durable in Postgres; the broker is not needed to accept
    private_broker.restart_empty()
    after = _submit_all(api, [body] * JOBS_PER_PHASE)

    def settled() -> bool:
        dispatch_sweep()
        expire_leases()
        return _all_finished(before + during + after)

    wait_for(settled, timeout=SETTLE_TIMEOUT_S, interval=1, what="every job to finish after the restart")
    all_ids = before + during + after
    tally = _tally("2. broker down, restarted empty", all_ids, journal)
    assert (tally.completed, tally.duplicated, tally.lost) == (len(all_ids), 0, 0)
    assert in_flight > 0  # the outage hit work in progress
    assert worker.process.poll() is None and private_control_worker.poll() is None  # both rode it out


def test_a_postgres_restart_while_workers_report_loses_no_report(
    private_stack: PrivateStack, journal, tmp_path
):
    database, headers = private_stack.database, {"x-api-key": private_stack.api_key}
    worker_ids = [f"pg-fault-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    # They join the private stack's fleet as rented hosts do: a join token, exchanged with its API.
    token = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_join_token",
            "fault-hosts",
            "--pool",
            "standard",
            "--max-workers",
            "2",
        ],
        env=private_stack.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {
        **private_stack.env,
        "SIMULATION_JOURNAL": str(journal),
        "WORKER_JOIN_TOKEN": token,
        "JOBQUEUE_API_URL": private_stack.api_url,
        "WORKER_CREDENTIALS_DIR": str(tmp_path),
    }
    broker_address = "redis://" + private_stack.broker.url.split("@", 1)[1]
    workers = [
        spawn_gpu_worker(env, broker_address, worker_id=worker_id, slots=2) for worker_id in worker_ids
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
            lambda: database.scalar(completed) == len(job_ids),
            timeout=SETTLE_TIMEOUT_S,
            interval=1,
            what="every job",
        )
        statuses = dict(database.rows("SELECT id::text, status FROM jobqueue_job"))
        dead_lettered = database.scalar("SELECT count(*) FROM jobqueue_deadletterjob")
        tally = tally_faults("3. Postgres restarted while workers report", statuses, dead_lettered, journal)
        assert (tally.completed, tally.duplicated, tally.lost) == (200, 0, 0)
        assert active > 0  # workers were running jobs, whose reports met the outage and were retried
        executions = "SELECT count(*) FROM jobqueue_jobexecution WHERE outcome = %s"
        assert database.scalar(executions, ("completed",)) == len(job_ids)
        assert database.scalar(executions, ("lost",)) == 0  # no attempt was given up on
        listing = requests.get(f"{private_stack.api_url}/api/jobs", headers=headers, timeout=30)
        assert listing.status_code == 200  # the API reconnected
    finally:
        stop_processes(workers)


def test_transient_permanent_and_exhausted_failures_end_as_their_policy_says(
    api: APIClient, gpu_worker, journal
):
    gpu_worker(slots=4)
    gpu_worker(slots=4)
    recovering = _submit_all(api, [{"payload": {"fail_times": 2}, "max_retries": 3}] * 100)
    permanent = _submit_all(api, [{"payload": {"fail_permanently": True}, "max_retries": 3}] * 50)
    exhausted = _submit_all(api, [{"payload": {"fail_times": 5}, "max_retries": 2}] * 50)
    all_ids = recovering + permanent + exhausted

    wait_for(lambda: _all_finished(all_ids), timeout=SETTLE_TIMEOUT_S, interval=0.5, what="every job")

    tally = _tally("4. transient, permanent and exhausted failures", all_ids, journal)
    assert (tally.completed, tally.dead_lettered, tally.duplicated, tally.lost) == (100, 100, 0, 0)

    def attempts(job_ids: list[str]) -> set[int]:
        return {JobExecution.objects.filter(job_id=job_id).count() for job_id in job_ids}

    assert attempts(recovering) == {3}  # N=2 transient failures, then success: N+1 executions
    assert attempts(permanent) == {1}
    assert attempts(exhausted) == {3}  # max_retries=2: every attempt kept
    reasons = DeadLetterJob.objects.filter(job_id__in=permanent + exhausted).values_list("reason", flat=True)
    assert sorted(set(reasons)) == ["permanent_failure", "retries_exhausted"]
    assert DeadLetterJob.objects.filter(job_id__in=exhausted, reason="retries_exhausted").count() == 50


def test_hanging_jobs_are_failed_by_their_timeout_and_retried(api: APIClient, gpu_worker, journal):
    gpu_worker(slots=4)
    gpu_worker(slots=4)
    hanging = _submit_all(api, [{"payload": {"hang_times": 1}, "timeout_seconds": 1, "max_retries": 1}] * 20)
    healthy = _submit_all(api, [{"payload": {"duration": 0.05}}] * 180)
    all_ids = hanging + healthy

    def settled() -> bool:
        fail_timed_out_jobs()  # the control plane's own deadline, next to the worker's
        return _all_finished(all_ids)

    wait_for(settled, timeout=SETTLE_TIMEOUT_S, interval=0.5, what="every job")

    tally = _tally("5. hanging jobs timed out and retried", all_ids, journal)
    assert (tally.completed, tally.dead_lettered, tally.duplicated, tally.lost) == (200, 0, 0, 0)
    timed_out = JobExecution.objects.filter(job_id__in=hanging, outcome="failed", error__code="TIMEOUT")
    assert timed_out.count() == 20
    assert set(Job.objects.filter(pk__in=hanging).values_list("attempt", flat=True)) == {2}


def test_the_report_consumer_killed_mid_batch_loses_no_report_and_applies_none_twice(
    api: APIClient, private_broker, private_lane_consumers, gpu_worker, journal
):
    # The killed consumer's unacknowledged messages come back after the visibility timeout: short here.
    # Its long linger keeps a batch in hand nearly all the time, so the kill lands in one.
    visibility = {"CONTROL_VISIBILITY_TIMEOUT_SECONDS": "3"}
    victim = private_lane_consumers(**visibility, CONTROL_LANE_LINGER_SECONDS="0.3")
    for _ in range(3):
        gpu_worker(broker_url=private_broker.url, slots=2)
    job_ids = _submit_all(api, [{"payload": {"duration": 0.05, "steps": 2}}] * 240)
    wait_for(
        lambda: Job.objects.filter(pk__in=job_ids, status="completed").count() >= 40,
        timeout=180,
        what="the run to be under way",
    )

    broker = redis.Redis.from_url(private_broker.url)
    wait_for(lambda: broker.hlen(UNACKED_CONTROL_KEY) > 0, timeout=30, interval=0.01, what="a batch in hand")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    stranded = broker.hlen(UNACKED_CONTROL_KEY)
    private_lane_consumers(**visibility)  # its successor

    def settled() -> bool:
        # What beat runs: the dispatch sweep, and the lease sweep that also offers again an assignment
        # committed by the killed consumer but never published (it died between the two).
        dispatch_sweep()
        expire_leases()
        return _all_finished(job_ids)

    wait_for(settled, timeout=SETTLE_TIMEOUT_S, interval=1, what="every job to finish")
    tally = _tally("6. kill -9 the report consumer mid-batch", job_ids, journal)
    assert stranded > 0  # the kill left messages unacknowledged, which had to come back
    assert (tally.completed, tally.duplicated, tally.lost) == (240, 0, 0), _runs_twice(journal)
    assert JobExecution.objects.filter(job_id__in=job_ids, outcome="completed").count() == 240
    others = JobExecution.objects.filter(job_id__in=job_ids).exclude(outcome="completed")
    # Nothing failed and nothing ran twice; at most an assignment that never reached its worker.
    assert not others.exclude(error__code="NOT_DELIVERED", started_at__isnull=True).exists()
