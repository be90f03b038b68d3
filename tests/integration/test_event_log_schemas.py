"""Every event the system writes matches its type's schema, whichever path wrote it: `record_*`, a
transition's own statement, or the dispatcher's assignment statement (which validates nothing itself)."""

from __future__ import annotations

import pytest

from dispatch.assignment import fill_worker
from dispatch.reports import (
    report_failed,
    report_handed_back,
    report_progress,
    report_started,
    report_succeeded,
)
from events.models import Event
from events.schemas import validate_event
from jobqueue.cancellation import cancel_job
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_event_of_a_jobs_life_matches_its_schema(settings):
    settings.RETRY_BACKOFF_BASE_SECONDS = 0  # retries go straight back to pending
    done, failed, handed_back, cancelled = (make_job(max_retries=1) for _ in range(4))
    worker = make_worker(slots=4)  # after the jobs: nothing dispatched them yet
    assert len(fill_worker(worker.pk)) == 4
    for job in (done, failed, handed_back):
        report_started(job.pk, 1, worker.pk, running_for_ms=10)
    report_progress(done.pk, 1, 50, "half")
    report_succeeded(done.pk, 1, {"image": "x.png"}, runtime_ms=20)
    report_failed(failed.pk, 1, {"code": "OOM", "message": "out of memory", "class": "transient"})
    fill_worker(worker.pk)
    report_failed(failed.pk, 2, {"code": "OOM", "message": "out of memory", "class": "transient"})
    report_handed_back(handed_back.pk, 1, runtime_ms=5)
    cancel_job(cancelled.pk, "no longer wanted")

    events = list(Event.objects.order_by("id"))
    kinds = {event.type for event in events}
    assert {
        "job_submitted",
        "job_assigned",
        "job_started",
        "job_progress",
        "job_completed",
        "job_retry_scheduled",
        "job_failed",
        "job_dead_lettered",
        "job_queued",
        "job_cancel_requested",
    } <= kinds
    for event in events:
        validate_event(event.type, event.payload)
