"""Retention: finished records older than their kind's setting go, in bounded batches, exported first
when asked; unfinished and recent ones stay, and so does anything a consumer of the log has not read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db.models import Max
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Tenant
from dispatch.assignment import fill_worker
from dispatch.reports import report_succeeded
from events.models import Event, EventRelayCursor
from jobqueue.cancellation import cancel_job
from jobqueue.models import Job, JobExecution
from machines.models import Worker, WorkerStatus
from retention.pruning import prune_all
from tests.factories import make_job, make_worker
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timezone.now() - timedelta(days=45)


def finished_job(completed_at=LONG_AGO) -> Job:
    job = make_job()
    if not Job.objects.filter(pk=job.pk, status="assigned").exists():  # a freed worker may have taken it
        assert fill_worker(make_worker().id)
    job.refresh_from_db()
    assert report_succeeded(str(job.pk), job.attempt, {"ok": True})
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


def _client_driven_step(tenant_name: str, workflow_id: str) -> Job:
    api = APIClient()
    api.credentials(
        HTTP_X_API_KEY=ApiKey.issue(tenant_name, tenant=Tenant.objects.create(name=tenant_name))[1]
    )
    body = {"type": "simulation", "workflow_id": workflow_id, "current_step": 1, "total_steps": 1}
    return Job.objects.get(pk=api.post("/api/jobs", body, format="json").json()["job_id"])


def test_an_old_workflow_goes_with_its_jobs_and_events_and_another_tenants_of_that_id_stays():
    gone, kept = _client_driven_step("acme", "wf-same"), _client_driven_step("globex", "wf-same")
    cancel_job(gone.pk, "done with it")
    Workflow.objects.filter(tenant__name="acme").update(completed_at=LONG_AGO)
    Event.objects.filter(tenant_id=gone.tenant_id).update(created_at=LONG_AGO)
    consumers_read_everything()

    assert prune_all()["workflows"] == 1

    assert list(Workflow.objects.values_list("tenant__name", "workflow_id")) == [("globex", "wf-same")]
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Event.objects.filter(tenant_id=gone.tenant_id).exists()
    assert Event.objects.filter(tenant_id=kept.tenant_id, workflow_id="wf-same").exists()
