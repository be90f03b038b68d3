"""Rented GPU hosts are untrusted: a worker joins with a token, gets a broker user of its own, and can
neither read another worker's work, nor speak for another worker's attempts, nor reach the control
plane's remote control, nor touch the broker beyond its own keys; revoked, it stops. Real worker
processes, a real lane consumer, a real API server, the real broker's ACLs."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from celery import Celery

from gpu_worker.reporter import Reporter
from gpu_worker.supervisor import EXIT_CREDENTIAL_REFUSED
from jobqueue.models import Job
from machines import credentials
from machines.models import Worker, WorkerCredential
from tests.conftest import (
    ROOT,
    TEST_DATA_DIR,
    _child_env,
    _running_api_server,
    stop_process,
    wait_for,
    worker_broker_url,
)
from tests.factories import lease_of
from wire import fleet, names

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api_server(services, control_worker, transactional_db):
    with _running_api_server(_child_env(services)) as url:
        yield url


def _start_joining_worker(services, api_url: str, token: str, worker_id: str, credentials_dir: Path):
    argv = [sys.executable, "-m", "gpu_worker", "--worker-id", worker_id, "--pool", "standard"]
    argv += ["--api-url", api_url, "--credentials-dir", str(credentials_dir), "--heartbeat-seconds", "1"]
    # The broker's address only: the credential comes from joining.
    host_only = services.redis_url.split("@", 1)[1]
    env = {**_child_env(services), "BROKER_URL": f"redis://{host_only}", "WORKER_JOIN_TOKEN": token}
    log = open(TEST_DATA_DIR / f"{worker_id}.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_a_worker_joins_with_a_token_runs_jobs_as_itself_and_comes_back_as_itself(
    services, api_server, submit, wait_for_status, tmp_path
):
    _, token = credentials.create_join_token(
        "rented-batch-1", "heavy", expires_in=timedelta(hours=1), max_workers=2
    )
    worker_id = f"joiner-{uuid.uuid4().hex[:6]}"
    process = _start_joining_worker(services, api_server, token, worker_id, tmp_path)
    try:
        wait_for(lambda: Worker.objects.filter(pk=worker_id).exists(), timeout=60, what="the worker to join")
        # The join token's pool, whatever the worker's own flags said.
        assert Worker.objects.get(pk=worker_id).pool == "heavy"
        kept = tmp_path / f"{worker_id}.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        job_id = submit(type="simulation", payload={"duration": 0.1}, requirements={"pool": "heavy"})
        wait_for_status(job_id, "completed", timeout=30)
        assert Job.objects.get(pk=job_id).worker_id == worker_id

        # Another host presenting the same token (made for two) cannot take over this worker's id.
        again = requests.post(
            f"{api_server}/api/fleet/join",
            json={"worker_id": worker_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert (again.status_code, again.json()["error"]["code"]) == (409, "worker_id_taken")
    finally:
        stop_process(process)
    # Restarted, it comes back as itself with the credential it kept (no second join).
    restarted = _start_joining_worker(services, api_server, "no-longer-needed", worker_id, tmp_path)
    try:
        instance = Worker.objects.get(pk=worker_id).instance_id
        wait_for(
            lambda: Worker.objects.get(pk=worker_id).instance_id != instance,
            timeout=60,
            what="re-registration",
        )
        assert WorkerCredential.objects.get(pk=worker_id).join_token.joined == 1
    finally:
        stop_process(restarted)


def test_a_join_token_that_expired_or_was_revoked_buys_nothing(api_server):
    expired, expired_raw = credentials.create_join_token("old", "standard", expires_in=timedelta(hours=1))
    type(expired).objects.filter(pk=expired.pk).update(expires_at=expired.created_at)
    revoked, revoked_raw = credentials.create_join_token("pulled", "standard", expires_in=timedelta(hours=1))
    credentials.revoke_join_token(revoked)

    for raw in (expired_raw, revoked_raw, "jqj_guessed", ""):
        answer = requests.post(
            f"{api_server}/api/fleet/join",
            json={"worker_id": f"w-{uuid.uuid4().hex[:6]}"},
            headers={"Authorization": f"Bearer {raw}"},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "join_token_refused")
    assert not WorkerCredential.objects.exists()


def test_a_rogue_worker_with_its_own_credential_can_do_nothing_to_another_workers_work(
    services, gpu_worker, submit, wait_for_status, control_worker
):
    victim = gpu_worker()
    job_id = submit(type="simulation", payload={"duration": 3, "steps": 3})
    wait_for_status(job_id, "running", timeout=30)
    job = Job.objects.get(pk=job_id)
    rogue_id = f"rogue-{uuid.uuid4().hex[:6]}"
    rogue_url = worker_broker_url(rogue_id, services.redis_url)
    rogue = redis.Redis.from_url(rogue_url)

    # The broker refuses it everything but its own keys: it may push to its own lanes, not read them.
    refused = [
        ("BRPOP", names.worker_queue(victim.worker_id), 1),  # another worker's queue
        ("LPUSH", names.lane_list(names.CONTROL_LANE, victim.worker_id), "x"),  # speak on another's lane
        ("LPUSH", names.lane_list(names.FLEET_LANE, victim.worker_id), "x"),
        ("LPUSH", names.CONTROL_LANE, "x"),  # a lane shared by everyone: there is none
        ("LRANGE", names.lane_list(names.CONTROL_LANE, rogue_id), 0, -1),  # even its own lane: write only
        ("RPOP", names.lane_list(names.FLEET_LANE, victim.worker_id)),
        ("GET", names.cancel_flag_key(victim.worker_id, job_id)),
        ("HGETALL", "unacked"),  # the control plane's in-flight messages
        ("PUBLISH", "/0.celery.pidbox", "{}"),  # Celery remote control
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "*"),
        ("ACL", "LIST"),
    ]
    for command in refused:
        with pytest.raises(redis.exceptions.NoPermissionError):
            rogue.execute_command(*command)

    # A remote-control broadcast with its credential never leaves it.
    rogue_app = Celery("rogue", broker=rogue_url)
    rogue_app.conf.broker_transport_options = {"priority_steps": [0]}
    with pytest.raises(Exception, match=r"(?i)permission"):
        rogue_app.control.broadcast("shutdown", connection=rogue_app.connection_for_write())
    assert control_worker.poll() is None

    # What it may push, on its own lanes, cannot speak for the victim or stop the control plane.
    reporter = Reporter(rogue_app, rogue_id)
    reporter.succeeded(job_id, job.attempt, str(uuid.uuid4()), {"forged": True}, 1)
    reporter.failed(job_id, job.attempt, "", {"code": "X", "class": "permanent", "message": "forged"}, 1)
    victim_row = Worker.objects.get(pk=victim.worker_id)
    hijack = fleet.Description(
        worker_id=victim.worker_id, instance_id="hijacked", machine_id=victim_row.machine_id
    )
    reporter.register(hijack)
    reporter.heartbeat(fleet.Heartbeat(instance_id="hijacked", description=hijack))
    reporter.deregister(victim_row.instance_id)
    own_lane = names.lane_list(names.CONTROL_LANE, rogue_id)
    rogue.lpush(own_lane, b"[" * 100_000 + b"]" * 100_000, b"x" * (4 * 1024 * 1024), b"\xff junk")
    with pytest.raises(redis.RedisError):  # 64 MiB: the broker itself refuses it
        rogue.lpush(own_lane, b"x" * (64 * 1024 * 1024))

    wait_for_status(job_id, "completed", timeout=30)
    job.refresh_from_db()
    assert job.result.get("forged") is None and job.attempt == 1  # the victim's own result, first attempt
    assert Worker.objects.get(pk=victim.worker_id).instance_id == victim_row.instance_id
    from dispatch import refusals

    wait_for(lambda: refusals.by_sender().get(rogue_id, 0) >= 7, what="the rogue's messages to be counted")
    counted = refusals.counts()
    assert counted.get("report_lease_mismatch", 0) >= 2 and counted.get("description_not_sender", 0) >= 2
    assert counted.get("oversized", 0) >= 1 and counted.get("malformed", 0) >= 2
    assert refusals.by_sender().get(victim.worker_id, 0) == 0
    assert control_worker.poll() is None  # the lane consumer lives on
    assert lease_of(job)  # the real lease, which never left the victim's queue


def test_a_revoked_credential_stops_its_worker(gpu_worker, submit, wait_for_status):
    worker = gpu_worker(extra_flags=("--credential-grace-seconds", "2"))
    job_id = submit(type="simulation", payload={"duration": 0.1})
    wait_for_status(job_id, "completed", timeout=30)

    credentials.revoke(WorkerCredential.objects.get(pk=worker.worker_id))

    wait_for(lambda: worker.process.poll() is not None, timeout=30, what="the worker to stop")
    assert worker.process.returncode == EXIT_CREDENTIAL_REFUSED
