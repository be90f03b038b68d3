"""A single submit's `depends_on`: the job waits for every job it names to complete, then runs with
their results as inputs; if one of them fails or is cancelled, it is cancelled."""

from __future__ import annotations

import uuid

import pytest

from jobqueue.cancellation import cancel_job
from jobqueue.models import Job, JobStatus
from tests.integration.test_workflows import run

pytestmark = pytest.mark.django_db(transaction=True)


def _status(job_id: str) -> str:
    return Job.objects.get(pk=job_id).status


def test_a_job_waits_for_the_jobs_it_names_then_runs_with_their_results(submit):
    first, second = submit(type="simulation"), submit(type="simulation")
    after = submit(type="simulation", depends_on=[first, second])
    assert _status(after) == JobStatus.WAITING

    run(Job.objects.get(pk=first), result={"output": "one"})
    assert _status(after) == JobStatus.WAITING  # one of two
    run(Job.objects.get(pk=second), result={"output": "two"})

    released = Job.objects.get(pk=after)
    assert released.status == JobStatus.PENDING
    assert released.inputs == [
        {"job_id": job_id, "result": {"output": out}}
        for job_id, out in sorted([(first, "one"), (second, "two")])
    ]


def test_a_job_whose_dependencies_already_completed_is_pending_at_once(submit):
    done = submit(type="simulation")
    run(Job.objects.get(pk=done), result={"output": "x"})
    after = submit(type="simulation", depends_on=[done])
    job = Job.objects.get(pk=after)
    assert (job.status, job.inputs) == (JobStatus.PENDING, [{"job_id": done, "result": {"output": "x"}}])


def test_a_job_whose_dependency_fails_or_is_cancelled_is_cancelled(submit):
    doomed, dropped = submit(type="simulation"), submit(type="simulation")
    on_doomed = submit(type="simulation", depends_on=[doomed])
    on_dropped = submit(type="simulation", depends_on=[dropped])

    run(Job.objects.get(pk=doomed), outcome="failed")
    cancel_job(dropped)

    assert (_status(on_doomed), _status(on_dropped)) == (JobStatus.CANCELLED, JobStatus.CANCELLED)
    assert doomed in Job.objects.get(pk=on_doomed).cancel_reason


def test_depends_on_naming_an_unknown_or_ended_job_is_refused_and_creates_nothing(api, submit):
    cancelled = submit(type="simulation")
    cancel_job(cancelled)
    before = Job.objects.count()

    unknown = api.post("/api/jobs", {"type": "simulation", "depends_on": [str(uuid.uuid4())]}, format="json")
    ended = api.post("/api/jobs", {"type": "simulation", "depends_on": [cancelled]}, format="json")
    batch = api.post(
        "/api/jobs/batch", {"jobs": [{"type": "simulation", "depends_on": [cancelled]}]}, format="json"
    )

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "job_not_found")
    assert (ended.status_code, ended.json()["error"]["code"]) == (409, "dependency_failed")
    assert (batch.status_code, batch.json()["error"]["code"]) == (400, "depends_on_in_batch")
    assert Job.objects.count() == before
