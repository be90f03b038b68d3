"""The jobs REST API: submission, validation, idempotency, listing, stats, auth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from events.models import Event
from jobqueue.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_submitting_a_job_returns_201_with_its_id_and_status(api):
    response = api.post("/api/jobs", {"type": "simulation", "payload": {"duration": 1}}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    job = Job.objects.get(pk=body["job_id"])
    assert body["status"] == job.status == JobStatus.PENDING
    assert body["created_at"]
    assert Event.objects.filter(job_id=job.id, type="job_submitted").exists()


def test_submit_alias_accepts_the_replaced_systems_fields(api):
    body = {
        "service_required": "comfyui",
        "priority": 0,
        "prompt": "a cat",
        "parameters": {"steps": 20},
        "customer_id": "cust-1",
        "ctx": {"storage": {"bucket": "b"}},
        "workflow_id": "wf-123",
        "workflow_priority": 70,
        "workflow_datetime": 1_700_000_000_000,
        "current_step": 1,
        "total_steps": 3,
        "requirements": {"hardware": {"gpu_memory_gb": 16}, "service_type": "comfyui"},
        "retry_count": 0,
    }
    response = api.post("/api/jobs/submit", body, format="json")

    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.type == "comfyui"
    assert job.priority == 0  # the replaced system turned 0 into 50
    assert job.effective_priority == 70
    assert job.payload == {"prompt": "a cat", "parameters": {"steps": 20}}
    assert job.ctx == {"storage": {"bucket": "b"}}
    assert job.required_gpu_memory_gb == 16
    assert job.order_time.timestamp() == 1_700_000_000
    assert (job.current_step, job.total_steps) == (1, 3)


def test_get_returns_the_job_with_result_error_and_executions(api, submit):
    job_id = submit(payload={"x": 1})

    response = api.get(f"/api/jobs/{job_id}")

    assert response.status_code == 200
    job = response.json()["job"]
    assert job["id"] == job_id
    assert {"result", "error", "executions", "progress", "attempt"} <= set(job)
    assert api.get(f"/api/jobs/{job_id}/status").json()["job"]["id"] == job_id


def test_unknown_job_is_a_404_in_the_envelope(api):
    response = api.get("/api/jobs/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api.get("/api/jobs/not-a-uuid").status_code == 404


def test_the_same_idempotency_key_returns_the_existing_job(api):
    body = {"type": "simulation", "idempotency_key": "order-42"}
    first = api.post("/api/jobs", body, format="json")
    second = api.post("/api/jobs", body, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["job_id"] == second.json()["job_id"]
    assert Job.objects.count() == 1


def test_idempotency_keys_are_scoped_per_tenant(api, api_client_for_new_key):
    other = api_client_for_new_key()  # a key of another tenant (same tenant: test_tenancy.py)
    body = {"type": "simulation", "idempotency_key": "same"}

    a = api.post("/api/jobs", body, format="json").json()["job_id"]
    b = other.post("/api/jobs", body, format="json").json()["job_id"]

    assert a != b


INVALID_BODIES = [
    ({"type": "simulation", "priority": 150}, "priority"),
    ({"type": "simulation", "priority": -1}, "priority"),
    ({"type": "simulation", "priority": "high"}, "priority"),
    ({"payload": {}}, "type"),
    ({"type": ""}, "type"),
    ({"type": "simulation", "colour": "blue"}, "colour"),
    ({"type": "simulation", "requirements": {"capabilities": ["bad cap!"]}}, "requirements.capabilities.0"),
    ({"type": "simulation", "requirements": {"capabilities": "upscale"}}, "requirements.capabilities"),
    ({"type": "simulation", "requirements": {"timeout_minutes": 15}}, "requirements.timeout_minutes"),
    ({"type": "simulation", "requirements": {"gpu_memory_gb": "lots"}}, "requirements.gpu_memory_gb"),
    ({"type": "simulation", "requirements": []}, "requirements"),
    ({"type": "simulation", "scheduled_at": "tomorrow"}, "scheduled_at"),
    ({"type": "simulation", "payload": [1, 2]}, "payload"),
    ({"type": "simulation", "webhook_url": "not a url"}, "webhook_url"),
    ({"type": "simulation", "webhook_url": "ftp://example.com/hook"}, "webhook_url"),
    ({"type": "simulation", "max_retries": -1}, "max_retries"),
    ({"type": "simulation", "timeout_seconds": 0}, "timeout_seconds"),
    ({"type": "simulation", "current_step": 3, "total_steps": 2}, "current_step"),
    ({"type": "simulation", "workflow_datetime": "yesterday"}, "workflow_datetime"),
    ({"type": "a", "service_required": "b"}, "type"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(api, body, field):
    response = api.post("/api/jobs", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert response.json()["success"] is False
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert error["message"]
    assert Job.objects.count() == 0
    assert Event.objects.count() == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b'{"type": "simulation", "payload": NaN}'])
def test_a_body_that_is_not_a_json_object_is_a_400(api, raw):
    response = api.post("/api/jobs", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"parse_error", "validation_error"}
    assert Job.objects.count() == 0


def test_missing_or_wrong_api_key_is_a_401(db):
    anonymous = APIClient()
    assert anonymous.post("/api/jobs", {"type": "simulation"}, format="json").status_code == 401
    anonymous.credentials(HTTP_X_API_KEY="jq_wrong")
    response = anonymous.get("/api/jobs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert Job.objects.count() == 0


def test_api_keys_are_stored_hashed(api_key):
    key, raw = api_key
    key.refresh_from_db()
    assert raw not in (key.key_hash, key.prefix, key.name)
    assert len(key.key_hash) == 64


def test_listing_filters_and_paginates(api, submit):
    ids = [submit(priority=p) for p in (10, 20, 30)]
    submit(type="upscale")

    page = api.get(
        "/api/jobs", {"type": "simulation", "limit": 2, "offset": 0, "ordering": "priority"}
    ).json()

    assert page["pagination"] == {"limit": 2, "offset": 0, "total": 3, "total_exact": True, "has_more": True}
    assert [j["id"] for j in page["jobs"]] == ids[:2]
    rest = api.get("/api/jobs", {"type": "simulation", "limit": 2, "offset": 2}).json()
    assert rest["pagination"]["has_more"] is False
    assert len(rest["jobs"]) == 1
    assert api.get("/api/jobs", {"status": "pending,running"}).json()["pagination"]["total"] == 4


@pytest.mark.parametrize(
    "query", [{"status": "exploded"}, {"limit": 0}, {"limit": "ten"}, {"offset": -1}, {"ordering": "secret"}]
)
def test_bad_list_queries_are_a_400(api, query):
    response = api.get("/api/jobs", query)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == next(iter(query))


def test_stats_count_jobs_by_status_and_type(api, submit):
    submit()
    submit()
    submit(type="upscale")

    stats = api.get("/api/jobs/stats", {"timeframe": "hour"}).json()

    assert stats["total"] == 3
    assert stats["by_status"]["pending"] == 3
    assert stats["by_status"]["completed"] == 0
    assert stats["by_type"]["simulation"]["total"] == 2
    assert api.get("/api/jobs/stats", {"timeframe": "century"}).status_code == 400


def test_a_future_scheduled_at_holds_the_job_until_due(api, submit):
    from jobqueue.release import release_scheduled_jobs

    job_id = submit(scheduled_at=(timezone.now() + timedelta(seconds=1)).isoformat())
    assert Job.objects.get(pk=job_id).status == JobStatus.SCHEDULED
    assert release_scheduled_jobs() == 0

    Job.objects.filter(pk=job_id).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert release_scheduled_jobs() == 1
    assert Job.objects.get(pk=job_id).status == JobStatus.PENDING


def test_cancelling_a_pending_job_cancels_it_and_a_second_cancel_is_a_409(api, submit):
    job_id = submit(requirements={"capabilities": ["nobody-has-this"]})

    response = api.post(f"/api/jobs/{job_id}/cancel", {"reason": "changed my mind"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.cancel_reason) == (JobStatus.CANCELLED, "changed my mind")
    again = api.delete(f"/api/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_already_finished"
    assert again.json()["error"]["details"] == {"status": "cancelled"}


def test_health_reports_database_and_broker_at_the_cost_of_two_pings(db, django_assert_num_queries):
    with django_assert_num_queries(1):  # SELECT 1: no count, whatever the fleet's size
        response = APIClient().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert set(body) == {"success", "status", "ready", "checks"}
    assert APIClient().get("/health/ready").json() == {"ready": True}


def test_openapi_schema_and_docs_are_served(db):
    client = APIClient()
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/jobs" in schema.json()["paths"]
    assert client.get("/api/docs").status_code == 200


def test_the_openapi_schema_covers_every_endpoint_without_a_warning(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.json"
    call_command("spectacular", "--fail-on-warn", "--format", "openapi-json", "--file", str(out))

    paths = __import__("json").loads(out.read_text())["paths"]
    for path in (
        "/api/machines",
        "/api/pools",
        "/api/webhooks",
        "/api/webhooks/deliveries/redeliver",
        "/api/jobs/{job_id}/result",
        "/api/dead-letters/requeue",
        "/health",
    ):
        assert path in paths, path


def test_correlation_id_is_taken_from_the_request_and_stored(api):
    response = api.post("/api/jobs", {"type": "simulation"}, format="json", HTTP_X_CORRELATION_ID="trace-abc")
    assert response["x-correlation-id"] == "trace-abc"
    job_id = response.json()["job_id"]
    assert Event.objects.get(job_id=job_id, type="job_submitted").correlation_id == "trace-abc"


def test_a_body_over_the_size_limit_is_a_413_in_the_envelope(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api.post("/api/jobs", {"type": "simulation", "payload": {"blob": "x" * 2000}}, format="json")

    assert response.status_code == 413
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "request_too_large"
    assert Job.objects.count() == 0


def test_admin_lists_jobs_and_cancels_them(admin_client, submit):
    job_id = submit(requirements={"capabilities": ["nobody-has-this"]})

    listing = admin_client.get("/admin/jobqueue/job/", {"status__exact": "pending"})
    assert listing.status_code == 200
    assert job_id in listing.content.decode()

    admin_client.post("/admin/jobqueue/job/", {"action": "cancel_jobs", "_selected_action": [job_id]})
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_while_the_database_is_unreachable_the_api_answers_503_not_a_traceback(api):
    from django.db import connection

    from devstack.embedded import free_port

    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there
    try:
        response = api.post("/api/jobs", {"type": "simulation"}, format="json")
        health = APIClient().get("/health")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == "5"
    assert health.status_code == 503
    assert health.json()["checks"]["database"]["ok"] is False
