"""A single submit's `depends_on`: the job waits for every job it names to complete, then runs with
their results as inputs (in the one shape workflow steps receive too); if one of them fails or is
cancelled, it is cancelled."""

from __future__ import annotations

import uuid

import pytest

from dispatch.assignment import fill_worker
from dispatch.reports import report_succeeded
from events.models import Event
from jobqueue.cancellation import cancel_job
from jobqueue.models import Job, JobStatus
from tests.conftest import run_in_threads
from tests.factories import make_worker
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
        {"step_index": 0, "name": "", "job_id": first, "result": {"output": "one"}},
        {"step_index": 1, "name": "", "job_id": second, "result": {"output": "two"}},
    ]


def test_a_job_whose_dependencies_already_completed_is_pending_at_once(submit):
    done = submit(type="simulation")
    run(Job.objects.get(pk=done), result={"output": "x"})
    after = submit(type="simulation", depends_on=[done])
    job = Job.objects.get(pk=after)
    assert (job.status, job.inputs) == (
        JobStatus.PENDING,
        [{"step_index": 0, "name": "", "job_id": done, "result": {"output": "x"}}],
    )


@pytest.mark.parametrize("repeat", range(10))
def test_two_named_jobs_completing_at_once_release_the_job_exactly_once(submit, repeat):
    first, second = submit(type="simulation"), submit(type="simulation")
    after = submit(type="simulation", depends_on=[first, second])
    parents = [Job.objects.get(pk=first), Job.objects.get(pk=second)]
    workers = [make_worker(), make_worker()]
    for worker in workers:
        assert fill_worker(worker.id)
    for parent in parents:
        parent.refresh_from_db()

    results, errors = run_in_threads(
        *(
            lambda p=parent: report_succeeded(str(p.id), p.attempt, {"output": str(p.id)})
            for parent in parents
        )
    )

    assert errors == [] and results == [True, True]
    released = Event.objects.filter(job_id=after, type="job_queued", payload__reason="dependencies_completed")
    assert released.count() == 1
    job = Job.objects.get(pk=after)
    assert job.open_dependencies == 0 and [i["job_id"] for i in job.inputs] == [first, second]


def test_a_job_whose_dependency_fails_or_is_cancelled_is_cancelled(submit):
    doomed, dropped = submit(type="simulation"), submit(type="simulation")
    on_doomed = submit(type="simulation", depends_on=[doomed])
    on_dropped = submit(type="simulation", depends_on=[dropped])

    run(Job.objects.get(pk=doomed), outcome="failed")
    cancel_job(dropped)

    assert (_status(on_doomed), _status(on_dropped)) == (JobStatus.CANCELLED, JobStatus.CANCELLED)
    assert doomed in Job.objects.get(pk=on_doomed).cancel_reason


def test_a_failure_cancels_the_whole_chain_that_waits_on_it(submit):
    first = submit(type="simulation")
    second = submit(type="simulation", depends_on=[first])
    third = submit(type="simulation", depends_on=[second])

    run(Job.objects.get(pk=first), outcome="failed")

    assert (_status(second), _status(third)) == (JobStatus.CANCELLED, JobStatus.CANCELLED)


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
