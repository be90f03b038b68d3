"""Recurring schedules: the API, and exactly one job per due run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobqueue.models import Job, JobSchedule
from jobqueue.tasks import run_due_schedules
from tests.conftest import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATE = {"type": "simulation", "priority": 70, "payload": {"duration": 0}}


def _create(api, **body):
    body = {"name": "nightly-upscale", "job": TEMPLATE, **body}
    return api.post("/api/schedules", body, format="json")


def test_a_cron_schedule_is_created_with_its_next_run(api):
    response = _create(api, cron="*/5 * * * *")

    assert response.status_code == 201, response.json()
    schedule = response.json()["schedule"]
    next_run = JobSchedule.objects.get(pk=schedule["id"]).next_run_at
    assert next_run > timezone.now()
    assert next_run.minute % 5 == 0 and next_run.second == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "every day"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),
        ({"cron": "* * * * *", "interval_seconds": 60}, "cron"),
        ({}, "cron"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 60, "job": {"type": "simulation", "priority": 150}}, "job.priority"),
        ({"interval_seconds": 60, "job": {"type": "x", "idempotency_key": "k"}}, "job.idempotency_key"),
        ({"interval_seconds": 60, "colour": "red"}, "colour"),
    ],
)
def test_bad_schedules_are_a_400_naming_the_field(api, body, field):
    response = _create(api, **body)

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert JobSchedule.objects.count() == 0


def test_a_due_schedule_submits_one_job_and_moves_to_its_next_run(api):
    schedule_id = _create(api, interval_seconds=3600).json()["schedule"]["id"]
    due_at = timezone.now() - timedelta(seconds=1)
    JobSchedule.objects.filter(pk=schedule_id).update(next_run_at=due_at)

    assert run_due_schedules() == 1
    assert run_due_schedules() == 0

    schedule = JobSchedule.objects.get(pk=schedule_id)
    job = Job.objects.get()
    assert (job.priority, job.metadata["schedule_id"]) == (70, schedule_id)
    assert schedule.last_job_id == job.id
    assert schedule.last_run_at == due_at
    assert schedule.next_run_at > timezone.now() + timedelta(minutes=59)


def test_two_beats_running_the_same_due_schedule_create_one_job(api):
    schedule_id = _create(api, interval_seconds=60).json()["schedule"]["id"]
    JobSchedule.objects.filter(pk=schedule_id).update(next_run_at=timezone.now() - timedelta(seconds=1))

    counts, errors = run_in_threads(*[run_due_schedules] * 4)

    assert errors == []
    assert sorted(counts) == [0, 0, 0, 1]
    assert Job.objects.count() == 1


def test_a_disabled_schedule_does_not_run_and_can_be_patched_and_deleted(api):
    schedule_id = _create(api, interval_seconds=60).json()["schedule"]["id"]

    patched = api.patch(f"/api/schedules/{schedule_id}", {"enabled": False}, format="json")
    assert patched.status_code == 200
    assert patched.json()["schedule"]["next_run_at"] is None
    assert run_due_schedules() == 0

    assert api.get("/api/schedules").json()["pagination"]["total"] == 1
    assert api.delete(f"/api/schedules/{schedule_id}").status_code == 200
    assert api.get(f"/api/schedules/{schedule_id}").status_code == 404


def test_concurrent_creates_of_one_name_make_one_schedule_and_the_rest_are_told_why(api_key):
    from rest_framework.test import APIClient

    def create() -> int:
        client = APIClient()  # one per thread
        client.credentials(HTTP_X_API_KEY=api_key[1])
        return _create(client, interval_seconds=60).status_code

    statuses, errors = run_in_threads(*[create] * 4)

    assert errors == []
    assert sorted(statuses) == [201, 400, 400, 400]  # never a 500 when two pass the check at once
    assert JobSchedule.objects.count() == 1
