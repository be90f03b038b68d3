"""The dead-letter queue: list, inspect, requeue (same job, fresh budget), bulk redrive, discard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.assignment import fill_worker
from dispatch.reports import report_failed, report_succeeded
from events.models import Event
from jobqueue.dead_letters import requeue_many
from jobqueue.models import DeadLetterJob, ExecutionOutcome, Job, JobExecution, JobStatus
from tests.conftest import run_in_threads
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

PERMANENT = {"code": "INVALID_INPUT", "message": "bad prompt", "class": "permanent"}
LOST = {"code": "WORKER_LOST", "message": "gone", "class": "transient"}


def dead_letter(job_type: str = "simulation", error: dict = PERMANENT) -> DeadLetterJob:
    """A job run once on a worker that then left, and failed for good."""
    job = make_job(type=job_type, max_retries=0)
    worker = make_worker(job_types=(job_type,))
    assert fill_worker(worker.id)
    job.refresh_from_db()
    assert report_failed(str(job.id), job.attempt, error)
    worker.delete()  # so a requeued job waits in `pending` until a test offers it a worker
    return DeadLetterJob.objects.get(job=job, requeued_at=None)


def test_requeue_sends_the_same_job_back_with_a_fresh_budget_and_its_history(api):
    dead = dead_letter()

    response = api.post(f"/api/dead-letters/{dead.pk}/requeue")

    assert response.status_code == 200, response.json()
    job = Job.objects.get(pk=dead.job_id)
    assert response.json()["job_id"] == str(job.pk)
    assert (job.status, job.retry_count, job.redrive_count, job.error) == (JobStatus.PENDING, 0, 1, None)
    assert JobExecution.objects.filter(job=job, attempt=1, outcome="failed").exists()  # history kept
    assert Event.objects.filter(job_id=job.pk, type="job_requeued").count() == 1
    dead.refresh_from_db()
    assert dead.requeued_at is not None and dead.requeued_by.startswith("api:")
    assert api.get("/api/dead-letters").json()["dead_letters"] == []  # open ones only, by default


def test_a_requeued_job_runs_as_a_new_attempt_and_ignores_the_old_ones_reports(api):
    dead = dead_letter()
    api.post(f"/api/dead-letters/{dead.pk}/requeue")
    assert fill_worker(make_worker().id)

    assert not report_succeeded(str(dead.job_id), 1, {"late": True})  # the dead-lettered attempt
    assert report_succeeded(str(dead.job_id), 2, {"image": "ok.png"})

    job = Job.objects.get(pk=dead.job_id)
    assert (job.status, job.attempt, job.result) == (JobStatus.COMPLETED, 2, {"image": "ok.png"})


def test_requeueing_twice_is_a_conflict_and_an_unknown_dead_letter_is_not_found(api):
    dead = dead_letter()
    assert api.post(f"/api/dead-letters/{dead.pk}/requeue").status_code == 200

    again = api.post(f"/api/dead-letters/{dead.pk}/requeue")
    missing = api.post("/api/dead-letters/999999999/requeue")

    assert (again.status_code, again.json()["error"]["code"]) == (409, "dead_letter_already_requeued")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert Job.objects.get(pk=dead.job_id).redrive_count == 1


def test_a_job_dead_lettered_again_after_a_requeue_has_both_dead_letters(api):
    dead = dead_letter()
    api.post(f"/api/dead-letters/{dead.pk}/requeue")
    assert fill_worker(make_worker().id)
    assert report_failed(str(dead.job_id), 2, PERMANENT)

    history = api.get("/api/dead-letters", {"state": "all", "job_id": str(dead.job_id)}).json()
    assert [(d["attempts"], d["requeued_at"] is None) for d in history["dead_letters"]] == [
        (2, True),
        (1, False),
    ]


def test_the_list_filters_by_type_reason_and_date(api):
    upscale = dead_letter("upscale")
    dead_letter("simulation")
    DeadLetterJob.objects.filter(pk=upscale.pk).update(created_at=timezone.now() - timedelta(days=2))

    by_type = api.get("/api/dead-letters", {"type": "upscale"}).json()
    by_reason = api.get("/api/dead-letters", {"reason": "retries_exhausted"}).json()
    recent = api.get("/api/dead-letters", {"created_after": (timezone.now() - timedelta(days=1)).isoformat()})

    assert [d["id"] for d in by_type["dead_letters"]] == [upscale.pk]
    assert by_reason["dead_letters"] == []
    assert [d["type"] for d in recent.json()["dead_letters"]] == ["simulation"]


def test_the_detail_shows_the_job_and_every_attempt(api):
    dead = dead_letter()

    body = api.get(f"/api/dead-letters/{dead.pk}").json()["dead_letter"]

    assert body["reason"] == "permanent_failure"
    assert body["last_error"]["code"] == "INVALID_INPUT"
    assert [e["outcome"] for e in body["job"]["executions"]] == ["failed"]


def test_a_bad_filter_is_a_400_naming_the_field(api):
    listing = api.get("/api/dead-letters", {"reason": "bored"})
    bulk = api.post("/api/dead-letters/requeue", {"filter": {"colour": "red"}}, format="json")

    assert (listing.status_code, listing.json()["error"]["field"]) == (400, "reason")
    assert (bulk.status_code, bulk.json()["error"]["field"]) == (400, "filter.colour")


def test_bulk_requeue_redrives_what_the_filter_matches_up_to_the_limit(api):
    upscales = [dead_letter("upscale") for _ in range(3)]
    other = dead_letter("simulation")

    first = api.post("/api/dead-letters/requeue", {"filter": {"type": "upscale"}, "limit": 2}, format="json")
    rest = api.post("/api/dead-letters/requeue", {"filter": {"type": "upscale"}}, format="json")

    assert (first.json()["matched"], first.json()["requeued"], first.json()["remaining"]) == (3, 2, 1)
    assert (rest.json()["matched"], rest.json()["requeued"], rest.json()["remaining"]) == (1, 1, 0)
    assert set(Job.objects.filter(pk__in=[d.job_id for d in upscales]).values_list("status", flat=True)) == {
        JobStatus.PENDING
    }
    assert Job.objects.get(pk=other.job_id).status == JobStatus.FAILED


def test_two_concurrent_bulk_requeues_redrive_each_job_once():
    letters = [dead_letter() for _ in range(12)]
    matching = DeadLetterJob.objects.filter(pk__in=[d.pk for d in letters])

    results, errors = run_in_threads(
        lambda: requeue_many(matching, limit=100), lambda: requeue_many(matching, limit=100)
    )

    assert errors == []
    assert sum(r.requeued for r in results) == 12
    assert set(
        Job.objects.filter(pk__in=[d.job_id for d in letters]).values_list("redrive_count", flat=True)
    ) == {1}
    assert Event.objects.filter(type="job_requeued", job_id__in=[d.job_id for d in letters]).count() == 12


def test_discarding_a_dead_letter_leaves_the_job_failed_and_records_it(api):
    dead = dead_letter()

    response = api.delete(f"/api/dead-letters/{dead.pk}")

    assert response.status_code == 204
    assert not DeadLetterJob.objects.filter(pk=dead.pk).exists()
    assert Job.objects.get(pk=dead.job_id).status == JobStatus.FAILED
    assert Event.objects.filter(job_id=dead.job_id, type="dead_letter_discarded").exists()
    assert api.delete(f"/api/dead-letters/{dead.pk}").status_code == 404


def test_a_requeued_poison_job_gets_a_fresh_count_of_lost_attempts(settings, api):
    settings.POISON_LOST_ATTEMPTS = 2
    job = make_job(max_retries=10)
    worker = make_worker()
    for attempt in (1, 2):
        fill_worker(worker.id)
        assert report_failed(str(job.id), attempt, LOST, outcome=ExecutionOutcome.LOST)
    dead = DeadLetterJob.objects.get(job=job, requeued_at=None)
    assert dead.reason == "poison"

    api.post(f"/api/dead-letters/{dead.pk}/requeue")
    fill_worker(worker.id)
    assert report_failed(str(job.id), 3, LOST, outcome=ExecutionOutcome.LOST)

    job.refresh_from_db()
    assert (job.status, job.retry_count) == (JobStatus.ASSIGNED, 1)  # one loss of a fresh budget: retried
    assert not DeadLetterJob.objects.filter(job=job, requeued_at=None).exists()


def test_the_admin_requeues_and_discards_selected_dead_letters(admin_client):
    requeued, discarded = dead_letter(), dead_letter()
    changelist = "/admin/jobqueue/deadletterjob/"

    admin_client.post(changelist, {"action": "requeue_selected", "_selected_action": [requeued.pk]})
    admin_client.post(changelist, {"action": "discard_selected", "_selected_action": [discarded.pk]})

    assert Job.objects.get(pk=requeued.job_id).status == JobStatus.PENDING
    assert DeadLetterJob.objects.get(pk=requeued.pk).requeued_by == "admin:admin"
    assert not DeadLetterJob.objects.filter(pk=discarded.pk).exists()
    assert Job.objects.get(pk=discarded.job_id).status == JobStatus.FAILED
