"""Workflows on real GPU-worker processes, through the API and the control worker."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from dispatch.leases import expire_leases
from dispatch.recovery import dispatch_sweep
from jobqueue.models import Job, JobExecution
from tests.conftest import wait_for
from workflows.models import Workflow, WorkflowStep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def create(api: APIClient, steps: list[dict], **fields) -> str:
    response = api.post("/api/workflows", {"steps": steps, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["workflow_id"]


def step(name: str, *depends_on, **payload) -> dict:
    return {"type": "simulation", "name": name, "depends_on": list(depends_on), "payload": payload}


def wait_until_finished(workflow_id: str, timeout: float = 120, sweep: bool = False) -> Workflow:
    def finished():
        if sweep:
            dispatch_sweep()
            expire_leases()
        return Workflow.objects.get(workflow_id=workflow_id).is_terminal

    wait_for(finished, timeout=timeout, interval=0.2, what=f"workflow {workflow_id} to finish")
    return Workflow.objects.get(workflow_id=workflow_id)


def jobs_by_name(workflow_id: str) -> dict[str, Job]:
    return {
        s.name: s.job
        for s in WorkflowStep.objects.filter(workflow__workflow_id=workflow_id).select_related("job")
    }


def test_a_diamond_runs_its_middle_steps_in_parallel_and_joins_after_both(api, gpu_worker):
    gpu_worker()
    gpu_worker()
    workflow_id = create(
        api,
        [
            step("generate", duration=0.1, result="image"),
            step("upscale", "generate", duration=0.8, result="big"),
            step("caption", "generate", duration=0.8, result="words"),
            step("publish", "upscale", "caption"),
        ],
    )

    workflow = wait_until_finished(workflow_id)

    assert (workflow.status, workflow.completed_steps) == ("completed", 4)
    jobs = jobs_by_name(workflow_id)
    upscale, caption, publish = jobs["upscale"], jobs["caption"], jobs["publish"]
    assert upscale.worker_id != caption.worker_id
    assert upscale.started_at < caption.completed_at and caption.started_at < upscale.completed_at  # overlap
    assert publish.started_at >= max(upscale.completed_at, caption.completed_at)
    assert publish.result["inputs"] == [
        {"job_id": str(upscale.id), "output": "big"},
        {"job_id": str(caption.id), "output": "words"},
    ]
    assert upscale.result["inputs"] == [{"job_id": str(jobs["generate"].id), "output": "image"}]


def test_a_chain_of_fifty_steps_runs_in_order(api, gpu_worker):
    gpu_worker()
    workflow_id = create(api, [step("s0")] + [step(f"s{i}", f"s{i - 1}") for i in range(1, 50)])

    workflow = wait_until_finished(workflow_id, timeout=180)

    assert (workflow.status, workflow.completed_steps, workflow.progress) == ("completed", 50, 100)
    jobs = jobs_by_name(workflow_id)
    for i in range(1, 50):
        assert jobs[f"s{i}"].started_at >= jobs[f"s{i - 1}"].completed_at


def test_fan_out_of_twenty_then_fan_in(api, gpu_worker):
    gpu_worker(slots=4)
    gpu_worker(slots=4)
    branches = [step(f"branch-{i}", "root", duration=0.05, result=i) for i in range(20)]
    workflow_id = create(api, [step("root"), *branches, step("join", *[b["name"] for b in branches])])

    workflow = wait_until_finished(workflow_id, timeout=120)

    assert (workflow.status, workflow.completed_steps) == ("completed", 22)
    join = jobs_by_name(workflow_id)["join"]
    assert sorted(i["output"] for i in join.result["inputs"]) == list(range(20))
    assert len({j.worker_id for j in jobs_by_name(workflow_id).values()}) == 2  # both workers took part


def test_fail_fast_on_real_workers_fails_the_workflow_with_its_counts(api, gpu_worker):
    gpu_worker()
    workflow_id = create(
        api,
        [step("ok"), {**step("broken", "ok", fail_permanently=True)}, step("never", "broken")],
    )

    workflow = wait_until_finished(workflow_id)

    assert (workflow.status, workflow.completed_steps, workflow.failed_steps, workflow.cancelled_steps) == (
        "failed",
        1,
        1,
        1,
    )
    assert [d["status"] for d in workflow.step_details] == ["completed", "failed", "cancelled"]


def test_cancelling_a_running_workflow_stops_its_running_step(api, gpu_worker):
    gpu_worker()
    workflow_id = create(api, [step("long", hang=True), step("after", "long")])
    wait_for(
        lambda: jobs_by_name(workflow_id)["long"].status == "running", timeout=30, what="the step to run"
    )

    response = api.post(f"/api/workflows/{workflow_id}/cancel")

    assert response.status_code == 202
    workflow = wait_until_finished(workflow_id, timeout=30)
    assert workflow.status == "cancelled"
    assert {j.status for j in jobs_by_name(workflow_id).values()} == {"cancelled"}


def test_a_broker_restarted_empty_mid_workflow_loses_no_step(
    api, private_broker, private_control_worker, gpu_worker, settings
):
    settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS = 3  # for this test's in-process sweeps
    worker = gpu_worker(broker_url=private_broker.url, slots=2)
    steps = [step("s0", duration=0.2)] + [step(f"s{i}", f"s{i - 1}", duration=0.2) for i in range(1, 8)]
    steps += [step(f"side-{i}", "s3", duration=0.2) for i in range(4)]
    workflow_id = create(api, steps)
    wait_for(lambda: jobs_by_name(workflow_id)["s2"].status == "completed", timeout=60, what="step s2")

    private_broker.server.stop()  # no persistence: queued assignments and reports in it are gone
    private_broker.restart_empty()

    workflow = wait_until_finished(workflow_id, timeout=180, sweep=True)
    assert (workflow.status, workflow.completed_steps) == ("completed", 12)
    job_ids = [j.id for j in jobs_by_name(workflow_id).values()]
    assert JobExecution.objects.filter(job_id__in=job_ids, outcome="completed").count() == 12  # each once
    assert worker.process.poll() is None and private_control_worker.poll() is None  # both rode it out
