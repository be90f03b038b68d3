"""POST /api/jobs/batch: many jobs in one transaction and one dispatch, with a result per job."""

from __future__ import annotations

import pytest

import dispatch.listener
from events.models import Event
from jobqueue.models import Job, JobStatus
from tests.factories import make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _job(**fields):
    return {"type": "simulation", "payload": {"duration": 0}, **fields}


def test_a_batch_creates_every_job_and_answers_per_job_in_order(api):
    response = api.post("/api/jobs/batch", {"jobs": [_job(priority=p) for p in (10, 20, 30)]}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["created"] == 3 and body["invalid"] == 0
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert {r["status"] for r in body["results"]} == {201}
    jobs = {str(j.pk): j for j in Job.objects.all()}
    assert [jobs[r["job_id"]].priority for r in body["results"]] == [10, 20, 30]
    assert Event.objects.filter(type="job_submitted").count() == 3


def test_a_batch_is_offered_to_workers_in_one_dispatch(api, monkeypatch):
    calls = []
    original = dispatch.listener.dispatch_on_commit
    monkeypatch.setattr(
        dispatch.listener, "dispatch_on_commit", lambda ids: (calls.append(list(ids)), original(ids))
    )
    worker = make_worker(slots=4)

    response = api.post("/api/jobs/batch", {"jobs": [_job() for _ in range(3)]}, format="json")

    assert response.status_code == 201
    assert len(calls) == 1 and len(calls[0]) == 3
    assert Job.objects.filter(status=JobStatus.ASSIGNED, worker_id=worker.pk).count() == 3


def test_an_invalid_job_refuses_an_atomic_batch_and_creates_nothing(api):
    response = api.post("/api/jobs/batch", {"jobs": [_job(), {"payload": {}}, _job()]}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == "jobs.1.type"
    assert not Job.objects.exists()
    assert not Event.objects.exists()


def test_a_non_atomic_batch_keeps_the_valid_jobs_and_reports_each_invalid_one(api):
    jobs = [_job(), _job(priority=101), _job()]
    response = api.post("/api/jobs/batch", {"jobs": jobs, "atomic": False}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is False and body["created"] == 2 and body["invalid"] == 1
    bad = body["results"][1]
    assert bad["status"] == 400 and "job_id" not in bad
    assert bad["error"]["code"] == "validation_error" and bad["error"]["field"] == "priority"
    assert Job.objects.count() == 2


def test_idempotency_keys_hold_across_and_within_batches(api):
    first = api.post("/api/jobs", _job(idempotency_key="render-1"), format="json").json()

    response = api.post(
        "/api/jobs/batch",
        {
            "jobs": [
                _job(idempotency_key="render-1"),
                _job(idempotency_key="render-2"),
                _job(idempotency_key="render-2"),
            ]
        },
        format="json",
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 201, 200]
    assert results[0]["job_id"] == first["job_id"]
    assert results[1]["job_id"] == results[2]["job_id"]
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "jobs"),
        ({"jobs": "x"}, "jobs"),
        ({}, "jobs"),
        ({"jobs": [{}], "atomic": "maybe"}, "atomic"),
    ],
)
def test_a_malformed_batch_is_a_400_naming_the_field(api, body, field):
    response = api.post("/api/jobs/batch", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Job.objects.exists()


def test_a_batch_over_the_limit_is_refused(api, settings):
    settings.JOB_BATCH_MAX_JOBS = 2

    response = api.post("/api/jobs/batch", {"jobs": [_job() for _ in range(3)]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["jobs"][0]["code"] == "too_many"
    assert not Job.objects.exists()


def test_an_item_that_is_not_an_object_is_reported_on_its_own(api):
    response = api.post("/api/jobs/batch", {"jobs": [_job(), "not-a-job"], "atomic": False}, format="json")

    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400]
    assert results[1]["error"]["code"] == "validation_error"


def test_concurrent_batches_with_the_same_keys_create_each_job_once(api_key):
    from accounts.models import ApiKey
    from jobqueue.job_request import JobRequest
    from jobqueue.submission import submit_jobs
    from tests.conftest import run_in_threads

    key = ApiKey.objects.get(pk=api_key[0].pk)

    def batch():
        requests = [
            JobRequest(
                type="simulation",
                payload={},
                priority=50,
                requirements={},
                required_capabilities=[],
                required_models=[],
                required_gpu_memory_gb=None,
                required_pool=None,
                max_retries=0,
                timeout_seconds=60,
                idempotency_key=f"k{i}",
            )
            for i in range(50)
        ]
        return [str(job.pk) for job, _ in submit_jobs(requests, key)]

    results, errors = run_in_threads(*[batch] * 4)
    assert not errors
    assert len({tuple(ids) for ids in results}) == 1  # every batch answered with the same jobs
    assert Job.objects.count() == 50


def test_client_driven_workflow_steps_in_one_batch_join_their_workflow(api):
    from workflows.models import Workflow

    steps = [_job(workflow_id="wf-batch", current_step=n, total_steps=2) for n in (1, 2)]
    response = api.post("/api/jobs/batch", {"jobs": steps}, format="json")

    assert response.status_code == 201
    workflow = Workflow.objects.get(workflow_id="wf-batch")
    assert sorted(workflow.steps.values_list("index", flat=True)) == [1, 2]
