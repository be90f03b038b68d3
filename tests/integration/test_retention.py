"""Retention: finished records older than their kind's setting go, in bounded batches, exported first
when asked; unfinished and recent ones stay, and so does anything a consumer of the log has not read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db.models import Max
from django.utils import timezone

from dispatch.assignment import fill_worker
from dispatch.reports import job_succeeded
from events.models import Event, EventRelayCursor
from jobqueue.models import Job, JobExecution
from machines.models import Worker, WorkerStatus
from retention.pruning import prune_all
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timezone.now() - timedelta(days=45)


def finished_job(completed_at=LONG_AGO) -> Job:
    job = make_job()
    if not Job.objects.filter(pk=job.pk, status="assigned").exists():  # a freed worker may have taken it
        assert fill_worker(make_worker().id)
    job.refresh_from_db()
    assert job_succeeded(str(job.pk), job.attempt, {"ok": True})
    Job.objects.filter(pk=job.pk).update(completed_at=completed_at)
    Event.objects.filter(job_id=job.pk).update(created_at=completed_at)  # as if it all happened then
    return job


def consumers_read_everything() -> None:
    last = Event.objects.aggregate(txid=Max("txid"), id=Max("id"))
    EventRelayCursor.objects.update_or_create(
        name="metrics", defaults={"last_txid": last["txid"], "last_id": last["id"]}
    )


def test_old_finished_jobs_go_with_their_executions_and_events_and_are_exported_first(settings, tmp_path):
    settings.RETENTION_EXPORT_DIR = str(tmp_path)
    old, recent, waiting = finished_job(), finished_job(completed_at=timezone.now()), make_job()
    consumers_read_everything()

    pruned = prune_all()

    assert pruned["jobs"] == 1
    assert not Job.objects.filter(pk=old.pk).exists()
    assert not JobExecution.objects.filter(job_id=old.pk).exists()
    assert not Event.objects.filter(job_id=old.pk).exists()
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    [line] = (tmp_path / f"jobs-{timezone.now():%Y%m%d}.jsonl").read_text().splitlines()
    assert json.loads(line)["id"] == str(old.pk)


def test_nothing_a_consumer_has_not_read_yet_is_pruned():
    old = finished_job()
    EventRelayCursor.objects.create(name="metrics", last_txid=0, last_id=0)  # a consumer far behind

    assert prune_all()["jobs"] == 0
    assert Job.objects.filter(pk=old.pk).exists()

    consumers_read_everything()
    assert prune_all()["jobs"] == 1


def test_a_run_prunes_a_bounded_number_of_rows(settings):
    settings.RETENTION_BATCH, settings.RETENTION_MAX_BATCHES = 2, 1
    for _ in range(3):
        finished_job()
    consumers_read_everything()

    assert prune_all()["jobs"] == 2
    assert prune_all()["jobs"] == 1


def test_retired_workers_go_after_their_own_retention():
    gone, live = make_worker(), make_worker()
    Worker.objects.filter(pk=gone.pk).update(
        status=WorkerStatus.OFFLINE, last_seen_at=timezone.now() - timedelta(days=8)
    )

    assert prune_all()["workers"] == 1
    assert list(Worker.objects.values_list("pk", flat=True)) == [live.pk]
