"""The event log: a schema per type checked on write, coalesced progress, replay, timeline, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.assignment import fill_worker
from dispatch.reports import report_failed, report_progress, report_started, report_succeeded
from events.models import Event
from events.schemas import SCHEMAS, InvalidEvent, validate_event
from events.types import EventType
from jobqueue.models import Job, JobStatus
from jobqueue.transitions import transition
from retention.pruning import prune_all
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_event_type_has_a_schema():
    assert set(SCHEMAS) == set(EventType.values)


@pytest.mark.parametrize(
    ("event_type", "payload", "complaint"),
    [
        ("job_exploded", {}, "unknown event type"),
        ("job_progress", {"status": "running", "attempt": 1, "stage": ""}, "needs payload.progress"),
        ("job_progress", {"status": "running", "attempt": 1, "progress": "50", "stage": ""}, "must be int"),
        ("job_progress", {"status": "running", "attempt": True, "progress": 5, "stage": ""}, "not a boolean"),
    ],
)
def test_an_event_that_does_not_match_its_schema_is_refused(event_type, payload, complaint):
    with pytest.raises(InvalidEvent, match=complaint):
        validate_event(event_type, payload)


def test_a_transition_whose_event_is_invalid_changes_nothing():
    job = make_job()

    with pytest.raises(InvalidEvent):
        transition(job.pk, from_statuses={JobStatus.PENDING}, to=JobStatus.CANCELLED, event="job_cancelled")

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert not Event.objects.filter(job_id=job.pk, type="job_cancelled").exists()


def test_events_written_by_a_whole_job_life_match_their_schemas():
    job = make_job(max_retries=1)
    worker = make_worker()
    fill_worker(worker.id)
    report_started(str(job.id), 1, worker.id)
    report_progress(str(job.id), 1, 40, "denoising")
    report_failed(str(job.id), 1, {"code": "GPU_OOM", "message": "oom", "class": "transient"})
    fill_worker(worker.id)
    report_succeeded(str(job.id), 2, {"image": "x.png"})

    events = list(Event.objects.filter(job_id=job.id).order_by("id"))
    assert [e.type for e in events] == [
        "job_submitted",
        "job_assigned",
        "job_started",
        "job_progress",
        "job_retry_scheduled",
        "job_assigned",
        "job_completed",
    ]
    for event in events:
        validate_event(event.type, event.payload)


def test_progress_events_are_coalesced_but_the_job_has_the_latest(settings):
    settings.PROGRESS_EVENT_MIN_INTERVAL_SECONDS = 60
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)

    for progress in range(10, 100, 10):
        assert report_progress(str(job.id), 1, progress, f"at {progress}")
    assert report_progress(str(job.id), 1, 100, "done")

    job.refresh_from_db()
    assert (job.progress, job.stage) == (100, "done")
    logged = Event.objects.filter(job_id=job.id, type="job_progress").order_by("id")
    assert [e.payload["progress"] for e in logged] == [10, 100]  # the first, then the 100%


def test_replay_returns_events_in_order_after_a_cursor_with_filters(api):
    first, second = make_job(type="upscale"), make_job()
    everything = api.get("/api/events").json()
    cursor = everything["events"][0]["id"]

    after = api.get("/api/events", {"after": cursor}).json()
    by_job = api.get("/api/events", {"job_id": str(second.id)}).json()
    by_type = api.get("/api/events", {"type": "job_submitted,job_assigned"}).json()
    paged = api.get("/api/events", {"limit": 1}).json()

    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids) and len(ids) == 2
    assert [e["id"] for e in after["events"]] == ids[1:]
    assert [e["job_id"] for e in by_job["events"]] == [str(second.id)]
    assert {e["type"] for e in by_type["events"]} == {"job_submitted"}
    assert (len(paged["events"]), paged["has_more"], paged["next_after"]) == (1, True, ids[0])
    assert everything["events"][0]["job_id"] == str(first.id)


@pytest.mark.parametrize(
    ("query", "field"),
    [({"type": "job_exploded"}, "type"), ({"after": "-1"}, "after"), ({"limit": "0"}, "limit")],
)
def test_a_bad_replay_query_is_a_400_naming_the_field(api, query, field):
    response = api.get("/api/events", query)

    assert (response.status_code, response.json()["error"]["field"]) == (400, field)


def test_a_jobs_timeline_has_its_events_and_each_attempts_worker_and_error(api):
    job = make_job(max_retries=1)
    worker = make_worker()
    fill_worker(worker.id)
    report_failed(str(job.id), 1, {"code": "GPU_OOM", "message": "oom", "class": "transient"})

    body = api.get(f"/api/jobs/{job.id}/events").json()

    assert [e["type"] for e in body["events"]][:3] == ["job_submitted", "job_assigned", "job_retry_scheduled"]
    first = body["attempts"][0]
    assert (first["attempt"], first["worker_id"], first["outcome"]) == (1, worker.id, "failed")
    assert first["error"]["class"] == "transient"
    assert api.get("/api/jobs/00000000-0000-0000-0000-000000000000/events").status_code == 404


def test_events_past_retention_are_pruned(settings):
    settings.EVENT_RETENTION_DAYS = 7
    settings.EVENT_PRUNE_BATCH = 2
    old, new = make_job(), make_job()
    Event.objects.filter(job_id=old.id).update(created_at=timezone.now() - timedelta(days=8))

    assert prune_all()["events"] == 1

    assert not Event.objects.filter(job_id=old.id).exists()
    assert Event.objects.filter(job_id=new.id).exists()
    assert Job.objects.filter(pk=old.pk).exists()  # only the log is pruned
