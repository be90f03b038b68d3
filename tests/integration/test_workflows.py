"""Workflows in the database: validation, release of dependents, failure policies, cancellation,
client-driven workflows. Workers are rows here and reports are applied directly, so every
interleaving is under the test's control; tests/test_workflows_end_to_end.py runs real workers."""

from __future__ import annotations

import pytest

from dispatch.assignment import fill_worker
from dispatch.reports import report_cancelled, report_failed, report_succeeded
from events.models import Event
from jobqueue.models import DeadLetterJob, Job, JobStatus
from machines.models import Worker
from tests.conftest import run_in_threads
from tests.factories import make_worker
from workflows.models import Workflow, WorkflowStep

pytestmark = pytest.mark.django_db(transaction=True)

PERMANENT = {"code": "INVALID_INPUT", "message": "bad prompt", "class": "permanent"}


def create(api, steps: list[dict], **fields) -> dict:
    response = api.post("/api/workflows", {"steps": steps, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def step(name: str, *depends_on, **fields) -> dict:
    return {"type": "simulation", "name": name, "depends_on": list(depends_on), **fields}


def job_of(workflow_id: str, name: str) -> Job:
    return WorkflowStep.objects.select_related("job").get(workflow__workflow_id=workflow_id, name=name).job


def statuses(workflow_id: str) -> dict[str, str]:
    steps = WorkflowStep.objects.filter(workflow__workflow_id=workflow_id).select_related("job")
    return {s.name: s.job.status for s in steps}


def run(job: Job, outcome: str = "completed", result: dict | None = None, *, take_next: bool = False) -> None:
    """Assign the job to a fresh worker and apply its final report. The worker then leaves (unless
    `take_next`: then it takes the next job in the report's transaction, as a real one does)."""
    worker = make_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING, job.status
    assert fill_worker(worker.id)
    job.refresh_from_db()
    assert job.worker_id == worker.id
    if not take_next:
        Worker.objects.filter(pk=worker.pk).update(job_types=[])
    if outcome == "completed":
        assert report_succeeded(str(job.id), job.attempt, result or {"output": job.id.hex[:6]})
    else:
        assert report_failed(str(job.id), job.attempt, PERMANENT)
    if not take_next:
        worker.delete()


DIAMOND = [step("a"), step("b", "a"), step("c", 0), step("d", "b", "c")]


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "code", "field"),
    [
        ([step("a", "b"), step("b", "a")], "dependency_cycle", "steps.0.depends_on"),
        ([step("a"), step("b", "c"), step("c", "b")], "dependency_cycle", "steps.1.depends_on"),
        ([step("a", "a")], "self_dependency", "steps.0.depends_on"),
        ([step("a"), step("b", 1)], "self_dependency", "steps.1.depends_on"),
        ([step("a"), step("b", "z")], "unknown_step", "steps.1.depends_on"),
        ([step("a"), step("b", 7)], "unknown_step", "steps.1.depends_on"),
        ([step("a"), step("a")], "duplicate_step_name", "steps.1.name"),
        ([], "no_steps", "steps"),
        ([step(f"s{i}") for i in range(51)], "too_many_steps", "steps.50"),
        ([step("a"), {"name": "b"}], "validation_error", "steps.1.type"),
        ([step("a"), step("b", True)], "validation_error", "steps.1.depends_on.0"),
        ([step("a", workflow_id="x")], "validation_error", "steps.0.workflow_id"),
    ],
)
def test_an_invalid_definition_is_a_400_naming_the_step_and_creates_nothing(api, steps, code, field):
    response = api.post("/api/workflows", {"steps": steps}, format="json")

    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert (Workflow.objects.count(), Job.objects.count()) == (0, 0)


def test_the_step_limit_is_a_setting(api, settings):
    settings.WORKFLOW_MAX_STEPS = 3

    response = api.post("/api/workflows", {"steps": [step(f"s{i}") for i in range(4)]}, format="json")

    assert (response.status_code, response.json()["error"]["field"]) == (400, "steps.3")


# --- creation and release ------------------------------------------------------------------------


def test_steps_without_dependencies_are_pending_at_creation_the_rest_wait(api):
    created = create(api, DIAMOND, name="diamond")

    assert len(created["job_ids"]) == 4
    assert statuses(created["workflow_id"]) == {
        "a": "pending",
        "b": "waiting",
        "c": "waiting",
        "d": "waiting",
    }
    workflow = Workflow.objects.get(workflow_id=created["workflow_id"])
    assert (workflow.status, workflow.total_steps, workflow.name) == ("pending", 4, "diamond")


def test_steps_inherit_the_workflows_priority_and_metadata_unless_they_set_their_own(api):
    created = create(
        api,
        [step("a", metadata={"k": "step"}), step("b", priority=90)],
        priority=70,
        metadata={"k": "workflow", "team": "x"},
    )
    a, b = job_of(created["workflow_id"], "a"), job_of(created["workflow_id"], "b")

    assert (a.priority, a.effective_priority, a.metadata) == (70, 70, {"k": "step", "team": "x"})
    assert (b.priority, b.effective_priority) == (90, 90)
    assert a.order_time == b.order_time == Workflow.objects.get(workflow_id=created["workflow_id"]).order_time


def test_an_older_workflows_steps_go_before_a_newer_ones_at_the_same_priority(api):
    older = create(api, [step("first"), step("second", "first")])
    newer = create(api, [step("first")])

    # The worker freed by the older workflow's first step picks its next job in the same transaction.
    run(job_of(older["workflow_id"], "first"), take_next=True)

    assert job_of(older["workflow_id"], "second").status == JobStatus.ASSIGNED
    assert job_of(newer["workflow_id"], "first").status == JobStatus.PENDING


def test_a_step_is_released_only_when_all_its_dependencies_completed_with_their_results(api):
    workflow_id = create(api, DIAMOND)["workflow_id"]

    run(job_of(workflow_id, "a"), result={"output": "image.png"})
    assert statuses(workflow_id) == {"a": "completed", "b": "pending", "c": "pending", "d": "waiting"}
    run(job_of(workflow_id, "b"), result={"output": "upscaled-b.png"})
    assert job_of(workflow_id, "d").status == JobStatus.WAITING
    run(job_of(workflow_id, "c"), result={"output": "upscaled-c.png"})

    d = job_of(workflow_id, "d")
    assert d.status == JobStatus.PENDING
    assert [(i["name"], i["result"]) for i in d.inputs] == [
        ("b", {"output": "upscaled-b.png"}),
        ("c", {"output": "upscaled-c.png"}),
    ]
    assert job_of(workflow_id, "b").inputs[0]["result"] == {"output": "image.png"}


@pytest.mark.parametrize("repeat", range(15))
def test_two_parents_completing_at_once_release_their_child_exactly_once(api, repeat):
    workflow_id = create(api, DIAMOND)["workflow_id"]
    run(job_of(workflow_id, "a"))
    b, c = job_of(workflow_id, "b"), job_of(workflow_id, "c")
    workers = [make_worker(), make_worker()]
    for worker in workers:
        assert fill_worker(worker.id)
    b.refresh_from_db()
    c.refresh_from_db()

    results, errors = run_in_threads(
        lambda: report_succeeded(str(b.id), b.attempt, {"output": "b"}),
        lambda: report_succeeded(str(c.id), c.attempt, {"output": "c"}),
    )

    assert errors == [] and results == [True, True]
    d = job_of(workflow_id, "d")
    assert d.status in {JobStatus.PENDING, JobStatus.ASSIGNED}
    released = Event.objects.filter(job_id=d.id, type="job_queued", payload__reason="dependencies_completed")
    assert released.count() == 1
    assert d.open_dependencies == 0
    assert len(d.inputs) == 2


def test_completion_is_detected_once_with_step_details_in_one_shape(api):
    workflow_id = create(api, DIAMOND)["workflow_id"]
    for name in "abcd":
        run(job_of(workflow_id, name))

    workflow = Workflow.objects.get(workflow_id=workflow_id)
    assert (workflow.status, workflow.completed_steps, workflow.progress) == ("completed", 4, 100)
    assert workflow.completed_at is not None
    completed = Event.objects.filter(workflow_id=workflow_id, type="workflow_completed")
    assert completed.count() == 1
    details = completed.get().payload["step_details"]
    assert details == workflow.step_details
    assert [d["name"] for d in details] == ["a", "b", "c", "d"]
    assert set(details[0]) == {
        "step_index",
        "name",
        "job_id",
        "status",
        "result",
        "error",
        "started_at",
        "completed_at",
        "duration_ms",
        "attempts",
    }
    api_steps = api.get(f"/api/workflows/{workflow_id}").json()["workflow"]["steps"]
    assert api_steps == details  # the same shape (and values) in the API and the event
    assert Event.objects.filter(workflow_id=workflow_id, type="workflow_step_completed").count() == 4


# --- failure policies and cancellation -----------------------------------------------------------


def test_fail_fast_cancels_every_step_not_started_and_fails_the_workflow(api):
    workflow_id = create(api, [step("x"), step("y"), step("after-x", "x"), step("after-y", "y")])[
        "workflow_id"
    ]

    run(job_of(workflow_id, "x"), outcome="failed")

    assert statuses(workflow_id) == {
        "x": "failed",
        "y": "cancelled",
        "after-x": "cancelled",
        "after-y": "cancelled",
    }
    workflow = Workflow.objects.get(workflow_id=workflow_id)
    assert (workflow.status, workflow.failed_steps, workflow.cancelled_steps) == ("failed", 1, 3)
    assert Event.objects.filter(workflow_id=workflow_id, type="workflow_failed").count() == 1


def test_fail_fast_lets_a_running_step_finish_and_ends_the_workflow_after_it(api):
    workflow_id = create(api, [step("x"), step("y"), step("after-y", "y")])["workflow_id"]
    worker = make_worker(slots=2)
    assert fill_worker(worker.id)  # x and y both running
    x, y = job_of(workflow_id, "x"), job_of(workflow_id, "y")

    assert report_failed(str(x.id), x.attempt, PERMANENT)
    assert Workflow.objects.get(workflow_id=workflow_id).status == "running"  # y still runs
    assert job_of(workflow_id, "after-y").status == JobStatus.CANCELLED
    assert report_succeeded(str(y.id), y.attempt, {})

    workflow = Workflow.objects.get(workflow_id=workflow_id)
    assert (workflow.status, workflow.completed_steps, workflow.failed_steps) == ("failed", 1, 1)


def test_continue_runs_independent_branches_and_cancels_only_the_failed_steps_dependents(api):
    steps = [
        step("x"),
        step("y"),
        step("after-x", "x"),
        step("after-after-x", "after-x"),
        step("after-y", "y"),
    ]
    workflow_id = create(api, steps, failure_policy="continue")["workflow_id"]

    run(job_of(workflow_id, "x"), outcome="failed")
    assert statuses(workflow_id) == {
        "x": "failed",
        "y": "pending",
        "after-x": "cancelled",
        "after-after-x": "cancelled",
        "after-y": "waiting",
    }
    run(job_of(workflow_id, "y"))
    run(job_of(workflow_id, "after-y"))

    workflow = Workflow.objects.get(workflow_id=workflow_id)
    assert (workflow.status, workflow.completed_steps, workflow.failed_steps, workflow.cancelled_steps) == (
        "failed",
        2,
        1,
        2,
    )


def test_cancelling_a_workflow_cancels_waiting_steps_and_stops_running_ones(api):
    workflow_id = create(api, DIAMOND)["workflow_id"]
    assert fill_worker(make_worker().id)
    a = job_of(workflow_id, "a")

    response = api.post(f"/api/workflows/{workflow_id}/cancel", {"reason": "changed my mind"}, format="json")

    assert response.status_code == 202  # a is running: it is asked to stop
    assert statuses(workflow_id) == {"a": "assigned", "b": "cancelled", "c": "cancelled", "d": "cancelled"}
    assert job_of(workflow_id, "a").cancel_requested_at is not None
    assert report_cancelled(str(a.id), a.attempt)
    workflow = Workflow.objects.get(workflow_id=workflow_id)
    assert (workflow.status, workflow.cancelled_steps) == ("cancelled", 4)
    again = api.post(f"/api/workflows/{workflow_id}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "workflow_already_finished")


def test_a_step_completing_after_its_workflow_was_cancelled_releases_nothing(api):
    workflow_id = create(api, [step("a"), step("b", "a")])["workflow_id"]
    assert fill_worker(make_worker().id)
    a = job_of(workflow_id, "a")
    api.post(f"/api/workflows/{workflow_id}/cancel")

    assert report_succeeded(str(a.id), a.attempt, {})  # it finished before it saw the stop flag

    assert statuses(workflow_id) == {"a": "completed", "b": "cancelled"}
    assert Workflow.objects.get(workflow_id=workflow_id).status == "cancelled"


def test_a_workflow_steps_dead_letter_cannot_be_requeued(api):
    workflow_id = create(api, [step("a", max_retries=0)])["workflow_id"]
    run(job_of(workflow_id, "a"), outcome="failed")
    dead = DeadLetterJob.objects.get(job=job_of(workflow_id, "a"))

    response = api.post(f"/api/dead-letters/{dead.pk}/requeue")

    assert (response.status_code, response.json()["error"]["code"]) == (409, "workflow_step_not_requeueable")
    assert job_of(workflow_id, "a").status == JobStatus.FAILED


# --- client-driven workflows (the replaced system's mode) ----------------------------------------


def submit_step(api, workflow_id: str, current: int, total: int, **fields):
    body = {"type": "simulation", "workflow_id": workflow_id, "current_step": current, "total_steps": total}
    return api.post("/api/jobs", {**body, **fields}, format="json")


def test_client_driven_steps_join_one_workflow_with_its_priority_and_original_time(api):
    first = submit_step(api, "emp-wf-1", 1, 3, workflow_priority=80, workflow_datetime=1_700_000_000_000)
    second = submit_step(api, "emp-wf-1", 2, 3, workflow_priority=10, workflow_datetime=1_800_000_000_000)

    assert first.status_code == second.status_code == 201
    workflow = Workflow.objects.get(workflow_id="emp-wf-1")
    assert (workflow.mode, workflow.priority, workflow.total_steps) == ("client", 80, 3)
    step_two = Job.objects.get(pk=second.json()["job_id"])
    assert (step_two.effective_priority, step_two.order_time) == (80, workflow.order_time)
    assert workflow.order_time.timestamp() == 1_700_000_000


def test_a_client_driven_workflow_completes_when_every_step_completed_not_when_the_last_arrives(api):
    one = submit_step(api, "emp-wf-2", 1, 3).json()["job_id"]
    three = submit_step(api, "emp-wf-2", 3, 3).json()["job_id"]
    run(Job.objects.get(pk=one))
    run(Job.objects.get(pk=three))
    assert Workflow.objects.get(workflow_id="emp-wf-2").status == "running"  # step 2 never ran

    two = submit_step(api, "emp-wf-2", 2, 3).json()["job_id"]
    run(Job.objects.get(pk=two))

    workflow = Workflow.objects.get(workflow_id="emp-wf-2")
    assert (workflow.status, workflow.completed_steps) == ("completed", 3)
    assert [d["step_index"] for d in workflow.step_details] == [1, 2, 3]


def test_a_client_driven_workflow_fails_when_a_step_fails_and_then_takes_no_more_steps(api):
    one = submit_step(api, "emp-wf-3", 1, 2).json()["job_id"]
    run(Job.objects.get(pk=one), outcome="failed")
    assert Workflow.objects.get(workflow_id="emp-wf-3").status == "failed"

    late = submit_step(api, "emp-wf-3", 2, 2)

    assert (late.status_code, late.json()["error"]["code"], late.json()["error"]["field"]) == (
        409,
        "workflow_finished",
        "workflow_id",
    )
    assert Job.objects.filter(workflow_id="emp-wf-3").count() == 1  # nothing created


def test_a_client_driven_step_number_is_taken_once(api):
    submit_step(api, "emp-wf-4", 1, 2)

    again = submit_step(api, "emp-wf-4", 1, 2)

    assert (again.status_code, again.json()["error"]["code"]) == (409, "workflow_step_exists")


def test_two_first_steps_arriving_at_once_make_one_workflow(api):
    results, errors = run_in_threads(
        lambda: submit_step(api, "emp-wf-5", 1, 2), lambda: submit_step(api, "emp-wf-5", 2, 2)
    )

    assert errors == [] and sorted(r.status_code for r in results) == [201, 201]
    assert WorkflowStep.objects.filter(workflow__workflow_id="emp-wf-5").count() == 2
    assert Event.objects.filter(workflow_id="emp-wf-5", type="workflow_created").count() == 1


# --- API reads -----------------------------------------------------------------------------------


def test_the_detail_shows_progress_steps_and_dependencies_and_the_list_filters(api):
    workflow_id = create(api, DIAMOND, name="shown")["workflow_id"]
    run(job_of(workflow_id, "a"))

    body = api.get(f"/api/workflows/{workflow_id}/status").json()["workflow"]
    listing = api.get("/api/workflows", {"status": "running"}).json()
    stats = api.get("/api/workflows/stats", {"timeframe": "hour"}).json()

    assert (body["status"], body["progress"], body["completed_steps"]) == ("running", 25, 1)
    assert body["dependencies"] == {"1": [0], "2": [0], "3": [1, 2]}
    assert [s["status"] for s in body["steps"]] == ["completed", "pending", "pending", "waiting"]
    assert [w["workflow_id"] for w in listing["workflows"]] == [workflow_id]
    assert stats["by_status"]["running"] == 1
    assert api.get("/api/workflows/nope").status_code == 404
    assert api.get("/api/workflows", {"status": "bored"}).status_code == 400


def test_the_same_idempotency_key_returns_the_same_workflow(api):
    first = create(api, [step("a")], idempotency_key="wf-key-1")
    again = api.post("/api/workflows", {"steps": [step("a")], "idempotency_key": "wf-key-1"}, format="json")

    assert again.status_code == 200
    assert again.json()["workflow_id"] == first["workflow_id"] and again.json()["job_ids"] == first["job_ids"]
    assert Workflow.objects.count() == 1


def test_the_admin_cancels_selected_workflows(admin_client, api):
    key = Workflow.objects.get(workflow_id=create(api, DIAMOND)["workflow_id"]).pk

    admin_client.post("/admin/workflows/workflow/", {"action": "cancel_workflows", "_selected_action": [key]})

    assert Workflow.objects.get(pk=key).status == "cancelled"
    assert admin_client.get(f"/admin/workflows/workflow/{key}/change/").status_code == 200
