"""Jobs submitted through the API and run by real GPU-worker processes over the real broker."""

from __future__ import annotations

import signal
import time

import pytest

from events.models import Event
from gpu_worker.__main__ import EXIT_STUCK_JOB
from jobqueue.models import DeadLetterJob, Job, JobExecution, JobStatus
from machines.models import Worker
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_submitted_job_completes_on_a_real_gpu_worker(api, submit, gpu_worker, wait_for_status):
    worker = gpu_worker()

    job_id = submit(payload={"duration": 0.3, "steps": 3, "result": {"image": "cat.png"}})
    wait_for_status(job_id, "completed")

    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert job["result"]["output"] == {"image": "cat.png"}
    assert job["progress"] == 100
    assert job["worker_id"] == worker.worker_id
    assert [e["outcome"] for e in job["executions"]] == ["completed"]
    assert job["executions"][0]["duration_ms"] >= 250
    types = set(Event.objects.filter(job_id=job_id).values_list("type", flat=True))
    assert {"job_submitted", "job_assigned", "job_started", "job_completed"} <= types


def test_a_worker_registers_what_it_can_do(gpu_worker):
    running = gpu_worker(
        pool="heavy", capabilities=("upscale", "sdxl"), models=("flux-dev",), gpu_memory_gb=80
    )

    worker = Worker.objects.get(pk=running.worker_id)
    assert worker.pool == "heavy"
    assert worker.capabilities == ["sdxl", "upscale"]
    assert worker.model_names == ["flux-dev"]
    assert worker.gpu_memory_gb == 80
    assert worker.job_types == ["simulation"]
    assert worker.queue == f"worker.{running.worker_id}"


def test_jobs_are_routed_by_gpu_memory_pool_and_capability(submit, gpu_worker, wait_for_status):
    small = gpu_worker(gpu_memory_gb=24, pool="standard")
    large = gpu_worker(gpu_memory_gb=48, pool="heavy", capabilities=("upscale",))

    big_jobs = [submit(requirements={"gpu_memory_gb": 48}, payload={"duration": 0.05}) for _ in range(4)]
    heavy_jobs = [submit(requirements={"pool": "heavy"}, payload={"duration": 0.05}) for _ in range(2)]
    upscale_jobs = [submit(requirements={"capabilities": ["upscale"]}) for _ in range(2)]
    standard_jobs = [submit(requirements={"pool": "standard"}) for _ in range(2)]
    impossible = submit(requirements={"gpu_memory_gb": 96})

    for job_id in big_jobs + heavy_jobs + upscale_jobs + standard_jobs:
        wait_for_status(job_id, "completed")

    ran_on = dict(Job.objects.values_list("id", "worker_id"))
    assert {ran_on[_uuid(j)] for j in big_jobs + heavy_jobs + upscale_jobs} == {large.worker_id}
    assert {ran_on[_uuid(j)] for j in standard_jobs} == {small.worker_id}
    assert Job.objects.get(pk=impossible).status == JobStatus.PENDING
    assert not JobExecution.objects.filter(job_id=impossible).exists()


def test_a_busy_worker_takes_waiting_jobs_in_priority_order(submit, gpu_worker, wait_for_status):
    gpu_worker()
    blocker = submit(payload={"duration": 1.0})
    wait_for_status(blocker, {"assigned", "running"})
    queued = [submit(priority=p) for p in (10, 90, 50, 90, 0)]

    for job_id in queued:
        wait_for_status(job_id, "completed")

    by_start = Job.objects.filter(pk__in=queued).order_by("assigned_at").values_list("priority", flat=True)
    assert list(by_start) == [90, 90, 50, 10, 0]
    first_90, second_90 = queued[1], queued[3]
    assert Job.objects.get(pk=first_90).assigned_at < Job.objects.get(pk=second_90).assigned_at
    for job in Job.objects.filter(pk__in=queued):
        # started and succeeded reports race on the control worker; times must still be in order
        assert job.created_at <= job.assigned_at <= job.started_at <= job.completed_at


def test_transient_failures_are_retried_until_the_job_succeeds(submit, gpu_worker, wait_for_status):
    gpu_worker()
    job_id = submit(payload={"fail_times": 2})

    wait_for_status(job_id, "completed")

    job = Job.objects.get(pk=job_id)
    assert (job.attempt, job.retry_count) == (3, 2)
    outcomes = list(job.executions.order_by("attempt").values_list("outcome", flat=True))
    assert outcomes == ["failed", "failed", "completed"]
    assert job.executions.get(attempt=1).error["code"] == "SIMULATED_TRANSIENT"


def test_a_permanent_failure_fails_the_job_into_the_dead_letter_queue(
    api, submit, gpu_worker, wait_for_status
):
    gpu_worker()
    job_id = submit(payload={"fail_permanently": True})

    wait_for_status(job_id, "failed")

    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert job["error"]["code"] == "SIMULATED_PERMANENT"
    assert job["error"]["class"] == "permanent"
    assert job["attempt"] == 1
    assert DeadLetterJob.objects.get(job_id=job_id).reason == "permanent_failure"


def test_a_job_past_its_timeout_fails_with_code_timeout(submit, gpu_worker, wait_for_status):
    gpu_worker()
    job_id = submit(payload={"hang": True}, timeout_seconds=1, max_retries=0)

    wait_for_status(job_id, "failed")

    job = Job.objects.get(pk=job_id)
    assert job.error["code"] == "TIMEOUT"
    assert job.error["class"] == "transient"


def test_a_job_that_ignores_its_timeout_is_failed_at_the_hard_limit_and_its_worker_exits_for_a_restart(
    submit, gpu_worker, wait_for_status
):
    worker = gpu_worker(extra_flags=("--hard-timeout-grace-seconds", "0.5"))
    job_id = submit(payload={"stuck_seconds": 60}, timeout_seconds=1, max_retries=0)

    wait_for_status(job_id, "failed")
    worker.process.wait(timeout=30)

    job = Job.objects.get(pk=job_id)
    assert (job.error["code"], job.error["class"]) == ("TIMEOUT", "transient")
    assert "hard limit" in job.error["message"]
    assert worker.process.returncode == EXIT_STUCK_JOB


def test_cancelling_a_running_job_stops_it_and_frees_the_worker(api, submit, gpu_worker, wait_for_status):
    gpu_worker()
    job_id = submit(payload={"hang": True})
    wait_for_status(job_id, "running")

    response = api.post(f"/api/jobs/{job_id}/cancel", {"reason": "user pressed stop"}, format="json")

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    wait_for_status(job_id, "cancelled")
    job = Job.objects.get(pk=job_id)
    assert job.cancel_reason == "user pressed stop"
    assert job.executions.get().outcome == "cancelled"
    assert api.post(f"/api/jobs/{job_id}/cancel").status_code == 409

    next_job = submit()
    wait_for_status(next_job, "completed")


def test_a_duplicate_report_over_the_broker_changes_nothing(submit, gpu_worker, wait_for_status):
    from core.celery_app import app
    from core.redis import redis_client
    from gpu_worker.reporter import Reporter
    from tests.factories import lease_of
    from wire import names

    worker = gpu_worker()
    job_id = submit(payload={"result": "first"})
    wait_for_status(job_id, "completed")
    events = Event.objects.filter(job_id=job_id).count()

    # The same worker says it again, with the attempt's own lease, on its own lane.
    lease = lease_of(Job.objects.get(pk=job_id))
    reporter = Reporter(app, worker.worker_id)
    reporter.succeeded(job_id, 1, lease, {"output": "second"})
    reporter.failed(job_id, 1, lease, {"code": "LATE", "message": "late"})
    lane = names.lane_list(names.CONTROL_LANE, worker.worker_id)
    wait_for(lambda: redis_client().llen(lane) == 0, what="the worker's lane to drain")
    time.sleep(0.5)  # let the control worker finish applying what it took

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.result["output"] == "first"
    assert Event.objects.filter(job_id=job_id).count() == events


def _uuid(value: str):
    import uuid

    return uuid.UUID(value)


def test_a_worker_killed_mid_job_and_restarted_loses_only_that_attempt(submit, gpu_worker, wait_for_status):
    first = gpu_worker(worker_id="restarting-gpu0")
    job_id = submit(payload={"duration": 1.5, "steps": 3})
    wait_for_status(job_id, "running")

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    gpu_worker(worker_id="restarting-gpu0")  # same id, new instance: its predecessor's attempt is lost

    wait_for_status(job_id, "completed", timeout=30)
    job = Job.objects.get(pk=job_id)
    assert list(job.executions.order_by("attempt").values_list("outcome", flat=True)) == ["lost", "completed"]
    assert job.executions.get(attempt=1).error["code"] == "WORKER_LOST"


def test_sigterm_lets_the_running_job_finish_then_the_worker_goes_offline(
    submit, gpu_worker, wait_for_status
):
    running = gpu_worker(extra_flags=("--shutdown-grace-seconds", "30"))
    job_id = submit(payload={"duration": 1.0, "steps": 2})
    wait_for_status(job_id, "running")

    running.process.send_signal(signal.SIGTERM)

    wait_for_status(job_id, "completed")
    assert running.process.wait(20) == 0
    wait_for(
        lambda: Worker.objects.get(pk=running.worker_id).status == "offline", what="the worker to go offline"
    )
    waiting = submit()
    time.sleep(1)
    assert Job.objects.get(pk=waiting).status == JobStatus.PENDING  # nothing goes to a stopped worker


def test_jobs_of_a_worker_killed_for_good_are_finished_by_another(
    submit, gpu_worker, wait_for_status, settings
):
    from dispatch.leases import expire_leases

    settings.WORKER_OFFLINE_AFTER_SECONDS = 2
    doomed = gpu_worker()
    job_id = submit(payload={"duration": 2, "steps": 4})
    wait_for_status(job_id, "running")

    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    gpu_worker()  # registers while the dead worker's lease runs out
    wait_for(lambda: expire_leases() > 0, timeout=15, interval=0.5, what="the lease to expire")

    wait_for_status(job_id, "completed", timeout=30)
    job = Job.objects.get(pk=job_id)
    assert list(job.executions.order_by("attempt").values_list("outcome", flat=True)) == ["lost", "completed"]
    assert job.worker_id != doomed.worker_id
