"""The fleet: machines and their workers as registered over the broker, pools, draining, customer
isolation, engine health, silence, one command per machine, and delegated results (real worker
processes, real control worker)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import psutil
import pytest

from accounts.models import ApiKey, Role
from events.models import Event
from gpu_worker.credentials import Credential
from gpu_worker.credentials import save as save_credential
from jobqueue.models import Job, JobStatus
from machines.models import Machine, Worker
from tests.conftest import ROOT, TEST_DATA_DIR, stop_process, wait_for, worker_broker_url

pytestmark = pytest.mark.django_db(transaction=True)


def _machine_flag(machine_id: str) -> tuple[str, ...]:
    return ("--machine-id", machine_id)  # the last --machine-id given wins


def _job(api, job_id: str) -> dict:
    return api.get(f"/api/jobs/{job_id}").json()["job"]


@pytest.fixture
def api_key(db):
    """The fleet is run by an operator (a client key is refused: tests/integration/test_tenancy.py)."""
    return ApiKey.issue(f"operator-{uuid.uuid4().hex[:8]}", role=Role.OPERATOR)


def test_three_workers_on_two_pools_each_get_only_jobs_they_can_run(api, submit, gpu_worker, wait_for_status):
    small = gpu_worker(pool="fast-lane", gpu_memory_gb=8, extra_flags=_machine_flag("box-a"))
    sdxl = gpu_worker(
        pool="standard", gpu_memory_gb=24, capabilities=("sdxl",), extra_flags=_machine_flag("box-b")
    )
    big = gpu_worker(
        pool="standard", gpu_memory_gb=80, capabilities=("sdxl", "flux"), extra_flags=_machine_flag("box-b")
    )
    jobs = {
        "fast": submit(requirements={"pool": "fast-lane"}, payload={"duration": 0.2}),
        "sdxl": submit(
            requirements={"capabilities": ["sdxl"], "gpu_memory_gb": 16}, payload={"duration": 0.2}
        ),
        "flux": submit(requirements={"capabilities": ["flux"]}, payload={"duration": 0.2}),
        "huge": submit(requirements={"gpu_memory_gb": 40}, payload={"duration": 0.2}),
    }
    unrunnable = submit(requirements={"gpu_memory_gb": 200})
    broken = submit(requirements={"pool": "fast-lane"}, payload={"fail_permanently": True})
    for job_id in jobs.values():
        wait_for_status(job_id, "completed")
    wait_for_status(broken, "failed")

    ran_on = {name: _job(api, job_id)["executions"][-1]["worker_id"] for name, job_id in jobs.items()}
    assert ran_on["fast"] == small.worker_id
    assert ran_on["sdxl"] in {sdxl.worker_id, big.worker_id}
    assert ran_on["flux"] == ran_on["huge"] == big.worker_id
    waiting = _job(api, unrunnable)
    assert waiting["status"] == "pending"
    assert waiting["eligibility"]["eligible_workers"] == 0
    assert waiting["eligibility"]["unmet"]["requirement"] == "gpu_memory_gb"
    pools = api.get("/api/pools").json()
    assert [j["job_id"] for j in pools["no_eligible_worker"]] == [unrunnable]
    by_pool = {p["pool"]: p for p in pools["pools"]}
    assert by_pool["fast-lane"]["machines"] == 1 and by_pool["standard"]["workers"]["idle"] == 2

    machines = {m["id"]: m for m in api.get("/api/machines").json()["machines"]}
    assert sorted(w["id"] for w in machines["box-b"]["workers"]) == sorted([sdxl.worker_id, big.worker_id])
    assert machines["box-b"]["status"] == "online"
    assert (
        machines["box-a"]["workers"][0]["jobs_completed"],
        machines["box-a"]["workers"][0]["jobs_failed"],
    ) == (1, 1)
    [failure] = api.get("/api/machines/box-a").json()["machine"]["recent_failures"]
    assert failure["job_id"] == broken and failure["error"]["code"] == "SIMULATED_PERMANENT"
    assert Event.objects.filter(type="machine_registered", machine_id="box-b").count() == 1
    workers = api.get("/api/workers?pool=standard").json()["workers"]
    assert {w["id"] for w in workers} == {sdxl.worker_id, big.worker_id}


def test_a_drained_machine_finishes_its_job_gets_nothing_new_and_resume_undoes_it(
    api, submit, gpu_worker, wait_for_status
):
    worker = gpu_worker(extra_flags=_machine_flag("drain-me"))
    running = submit(payload={"duration": 1.5, "steps": 3})
    wait_for_status(running, "running")

    drained = api.post("/api/machines/drain-me/drain").json()["machine"]
    waiting = submit(payload={"duration": 0})

    assert drained["draining"] is True
    wait_for_status(running, "completed")  # a running job finishes
    assert _job(api, waiting)["status"] == "pending"
    assert _job(api, waiting)["eligibility"]["unmet"]["requirement"] == "available"
    assert api.post("/api/machines/drain-me/resume").json()["machine"]["draining"] is False
    wait_for_status(waiting, "completed")
    assert _job(api, waiting)["executions"][-1]["worker_id"] == worker.worker_id


def test_customers_are_kept_apart_and_strict_jobs_run_only_on_dedicated_workers(
    api, submit, gpu_worker, wait_for_status
):
    dedicated = gpu_worker(extra_flags=("--customers", "acme"))
    shared = gpu_worker(extra_flags=("--exclude-customers", "acme"))
    acme_strict = submit(customer_id="acme", requirements={"customer_isolation": "strict"})
    acme = submit(customer_id="acme")
    other = submit(customer_id="globex")
    anonymous = submit()
    for job_id in (acme_strict, acme, other, anonymous):
        wait_for_status(job_id, "completed")

    ran_on = {j: _job(api, j)["executions"][-1]["worker_id"] for j in (acme_strict, acme, other, anonymous)}
    assert ran_on[acme_strict] == ran_on[acme] == dedicated.worker_id
    assert ran_on[other] == ran_on[anonymous] == shared.worker_id

    shared_only = submit(customer_id="initech", requirements={"customer_isolation": "strict"})
    assert _job(api, shared_only)["eligibility"]["unmet"]["requirement"] == "customer"
    refused = api.post(
        "/api/jobs", {"type": "simulation", "requirements": {"customer_isolation": "strict"}}, format="json"
    )
    assert (
        refused.status_code == 400 and refused.json()["error"]["field"] == "requirements.customer_isolation"
    )


def test_a_worker_whose_engine_is_down_takes_no_jobs_until_it_recovers(
    api, submit, gpu_worker, wait_for_status, tmp_path
):
    flag = tmp_path / "engine-down"
    flag.touch()
    worker = gpu_worker(
        extra_env={"SIMULATION_UNHEALTHY_FLAG": str(flag)}, extra_flags=_machine_flag("sick-box")
    )
    wait_for(
        lambda: not Worker.objects.get(pk=worker.worker_id).engine_healthy, what="the failing health check"
    )
    job_id = submit()

    detail = api.get("/api/machines/sick-box").json()["machine"]
    assert detail["status"] == "error" and "engine down" in detail["workers"][0]["health_detail"]
    assert _job(api, job_id)["status"] == "pending"
    flag.unlink()
    wait_for_status(job_id, "completed")
    assert Machine.objects.get(pk="sick-box").status == "online"
    changes = Event.objects.filter(type="machine_status_changed", machine_id="sick-box").order_by("id")
    # Registered already failing its health check (the registration carries it), then recovered.
    assert [(e.payload["from"], e.payload["to"]) for e in changes] == [
        ("starting", "error"),
        ("error", "online"),
    ]


def test_a_silent_worker_is_offline_after_the_configured_silence_and_its_job_is_recovered(
    submit, gpu_worker, wait_for_status, settings
):
    from dispatch.leases import expire_leases
    from machines.registry import mark_silent_workers_offline

    settings.WORKER_OFFLINE_AFTER_SECONDS = 2
    doomed = gpu_worker(extra_flags=_machine_flag("doomed-box"))
    job_id = submit(payload={"duration": 30, "steps": 30}, max_retries=2)
    wait_for_status(job_id, "running")
    doomed.process.send_signal(signal.SIGKILL)  # no goodbye
    gpu_worker(extra_flags=_machine_flag("spare-box"))

    wait_for(lambda: mark_silent_workers_offline() > 0, timeout=15, interval=0.5, what="the silence")
    assert Worker.objects.get(pk=doomed.worker_id).status == "offline"
    assert Machine.objects.get(pk="doomed-box").status == "offline"
    assert expire_leases() == 1
    wait_for_status(job_id, "running")
    assert Job.objects.get(pk=job_id).machine_id == "spare-box"


def test_one_command_on_a_two_gpu_machine_runs_two_pinned_workers_and_stops_them_together(
    services, control_worker, transactional_db, tmp_path
):
    from tests.conftest import _child_env

    # Each worker of the machine comes with a credential of its own, kept where it would be after joining.
    kept = tmp_path / "credentials"
    for worker_id in ("duo-gpu0", "duo-gpu1"):
        own_url = worker_broker_url(worker_id, services.redis_url)
        user, secret = own_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)
        save_credential(kept / f"{worker_id}.json", Credential(worker_id, user, secret, "standard", []))
    argv = [sys.executable, "-m", "gpu_worker", "--broker-url", services.redis_url, "--machine-id", "duo"]
    argv += ["--credentials-dir", str(kept)]
    argv += [
        "--gpu-count",
        "2",
        "--gpu-memory-gb",
        "24",
        "--heartbeat-seconds",
        "1",
        "--log-level",
        "WARNING",
    ]
    with open(TEST_DATA_DIR / "supervisor.log", "ab") as log:
        supervisor = subprocess.Popen(
            argv, env=_child_env(services), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: Worker.objects.filter(machine_id="duo").count() == 2, timeout=60, what="two workers")
        workers = {w.id: w for w in Worker.objects.filter(machine_id="duo")}
        assert set(workers) == {"duo-gpu0", "duo-gpu1"}
        assert [workers[w].info["cuda_visible_devices"] for w in sorted(workers)] == ["0", "1"]
        assert Machine.objects.get(pk="duo").status == "online"
        # The broker URL (with its password, in production) reaches the workers in their environment,
        # never on a command line that `ps` shows every user.
        children = psutil.Process(supervisor.pid).children()
        assert len(children) == 2
        for child in children:
            assert services.redis_url not in " ".join(child.cmdline())
            assert child.environ()["BROKER_URL"] == services.redis_url

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        wait_for(
            lambda: (
                set(Worker.objects.filter(machine_id="duo").values_list("status", flat=True)) == {"offline"}
            ),
            what="both workers to deregister",
        )
    finally:
        stop_process(supervisor)


# --- delegated work ----------------------------------------------------------------------------------


@pytest.fixture
def delegate(db):
    from rest_framework.test import APIClient

    from accounts.models import ApiKey

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKey.issue("delegate", can_complete_delegated=True)[1])
    return client


def test_an_authorised_client_completes_a_job_no_worker_runs(api, submit, delegate):
    job_id = submit(type="human-review")

    done = delegate.post(f"/api/jobs/{job_id}/result", {"result": {"approved": True}}, format="json")

    assert done.status_code == 200 and done.json()["status"] == "completed"
    job = Job.objects.get(pk=job_id)
    assert job.result == {"approved": True} and job.worker_id == "delegate:delegate"
    types = list(Event.objects.filter(job_id=job_id).order_by("id").values_list("type", flat=True))
    assert types == ["job_submitted", "job_assigned", "job_completed"]
    again = delegate.post(f"/api/jobs/{job_id}/result", {"result": {}}, format="json")
    assert again.status_code == 409


def test_a_delegated_failure_fails_the_job_and_only_delegates_may_report(api, submit, delegate):
    job_id = submit(type="human-review")

    assert api.post(f"/api/jobs/{job_id}/result", {"result": 1}, format="json").status_code == 403
    both = delegate.post(
        f"/api/jobs/{job_id}/result", {"result": 1, "error": {"message": "x"}}, format="json"
    )
    assert both.status_code == 400
    failed = delegate.post(
        f"/api/jobs/{job_id}/result", {"error": {"message": "rejected by a human"}}, format="json"
    )

    assert failed.status_code == 200 and failed.json()["status"] == JobStatus.FAILED
    assert Job.objects.get(pk=job_id).error["message"] == "rejected by a human"


def test_a_job_type_live_workers_run_cannot_be_completed_from_outside(submit, delegate, gpu_worker):
    gpu_worker(extra_flags=("--connectors", "simulation"))
    job_id = submit(type="simulation", scheduled_at="2099-01-01T00:00:00Z")

    response = delegate.post(f"/api/jobs/{job_id}/result", {"result": 1}, format="json")

    assert response.status_code == 409


def test_sigterm_past_the_grace_period_hands_the_job_back_for_another_worker(
    submit, gpu_worker, wait_for_status
):
    stopping = gpu_worker(extra_flags=("--shutdown-grace-seconds", "1"))
    job_id = submit(payload={"duration": 30, "steps": 60})
    wait_for_status(job_id, "running")

    stopping.process.send_signal(signal.SIGTERM)

    assert stopping.process.wait(20) == 0  # it did not wait out the 30 s job
    wait_for(lambda: Job.objects.get(pk=job_id).status == JobStatus.PENDING, what="the job to come back")
    job = Job.objects.get(pk=job_id)
    assert job.retry_count == 0  # handing back is no failure of the job's
    assert job.executions.get(attempt=1).error["code"] == "HANDED_BACK"
    assert Event.objects.filter(job_id=job_id, type="job_queued", payload__reason="handed_back").exists()
    taker = gpu_worker()
    wait_for_status(job_id, "running")
    assert Job.objects.get(pk=job_id).worker_id == taker.worker_id
