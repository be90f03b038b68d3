"""`/metrics` and the dashboard API: counts folded once each from the event log, gauges read at
scrape time, bounded labels, and who may read them."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from dispatch.assignment import fill_worker
from dispatch.reports import report_failed, report_succeeded
from events.models import Event
from jobqueue.models import Job
from metrics.folding import fold_once
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

PERMANENT = {"code": "INVALID_INPUT", "message": "bad prompt", "class": "permanent"}


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, frozenset], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def fold_all() -> None:
    while fold_once():
        pass


def run(job: Job, succeed: bool) -> None:
    """Run the job on a worker (one freed by an earlier report may have taken it already)."""
    job.refresh_from_db()
    if job.status == "pending":
        assert fill_worker(make_worker(job_types=(job.type,)).id)
        job.refresh_from_db()
    if succeed:
        assert report_succeeded(str(job.pk), job.attempt, {"image": "ok.png"})
    else:
        assert report_failed(str(job.pk), job.attempt, PERMANENT)


def test_jobs_are_counted_once_each_by_type_outcome_and_error():
    done, failed = make_job(type="txt2img"), make_job(type="txt2img", max_retries=0)
    make_job(type="upscale")
    run(done, succeed=True)
    run(failed, succeed=False)

    fold_all()
    fold_all()  # nothing left to count twice
    metrics = scrape()

    assert metrics[("jobs_submitted_total", frozenset({("job_type", "txt2img")}))] == 2
    assert metrics[("jobs_submitted_total", frozenset({("job_type", "upscale")}))] == 1
    processed = {("job_type", "txt2img"), ("status", "completed")}
    assert metrics[("jobs_processed_total", frozenset(processed))] == 1
    failed_labels = frozenset({("job_type", "txt2img"), ("error_class", "INVALID_INPUT")})
    assert metrics[("jobs_failed_total", failed_labels)] == 1
    assert metrics[("job_duration_seconds_count", frozenset({("job_type", "txt2img")}))] == 2
    assert metrics[("dead_letter_jobs", frozenset())] == 1
    assert metrics[("queue_depth_gauge", frozenset({("status", "pending"), ("pool", "any")}))] == 1
    assert metrics[("queue_depth_gauge", frozenset({("status", "dlq"), ("pool", "any")}))] == 1


def test_counts_outlive_the_events_they_were_folded_from():
    make_job()
    fold_all()
    Event.objects.all().delete()  # retention pruned the log

    assert scrape()[("jobs_submitted_total", frozenset({("job_type", "simulation")}))] == 1


def test_client_chosen_label_values_are_bounded(settings):
    settings.METRICS_MAX_LABEL_VALUES = 2
    for job_type in ("a", "b", "c", "d"):
        make_job(type=job_type)
    fold_all()

    submitted = {
        dict(labels)["job_type"]: value
        for (name, labels), value in scrape().items()
        if name == "jobs_submitted_total"
    }
    assert submitted == {"a": 1, "b": 1, "other": 2}


def test_workers_are_shown_by_pool_and_liveness():
    make_worker(pool="standard")
    make_worker(pool="premium")

    metrics = scrape()

    assert metrics[("worker_alive_gauge", frozenset({("pool", "premium")}))] == 1
    assert metrics[("workers_by_status", frozenset({("pool", "standard"), ("status", "idle")}))] == 1


def test_metrics_answer_only_internal_addresses_when_no_token_is_set():
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200


def test_metrics_ask_for_the_bearer_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "scrape-secret"

    refused = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert scrape(Client(REMOTE_ADDR="203.0.113.9"), HTTP_AUTHORIZATION="Bearer scrape-secret")


def test_the_dashboard_api_is_for_operators(api, operator_key):
    run(make_job(), succeed=True)
    make_job(type="upscale")
    assert api.get("/api/jobs/metrics").status_code == 403

    response = Client().get("/api/jobs/metrics", HTTP_X_API_KEY=operator_key[1])

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["queue"]["pending"] == 1
    last_hour = body["throughput"]["last_hour"]
    assert (last_hour["submitted"], last_hour["completed"]) == (2, 1)
    assert last_hour["error_rates"]["simulation"] == {"finished": 1, "failed": 0, "failure_rate": 0.0}
    assert body["workers"]["alive"] == 1
