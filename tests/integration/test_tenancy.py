"""Tenant boundaries and roles: a key of tenant B reaches none of tenant A's work (404, never 403, so
ids leak nothing), operators read every tenant's work and run the fleet, clients do not."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Role, Tenant
from events.recording import record_machine_event
from events.types import EventType
from jobqueue.models import DeadLetterJob, Job
from tests.factories import make_job
from tests.integration.test_dead_letters import dead_letter
from webhooks.fanout import fan_out_once
from webhooks.models import DefaultSigningSecret, WebhookDelivery, WebhookEndpoint
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def _client(tenant: Tenant, role: str = Role.CLIENT, **key_fields) -> APIClient:
    client = APIClient()
    raw = ApiKey.issue(
        f"{tenant.name}-{role}-{uuid.uuid4().hex[:6]}", tenant=tenant, role=role, **key_fields
    )[1]
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def tenants() -> tuple[Tenant, Tenant]:
    return Tenant.objects.create(name="acme"), Tenant.objects.create(name="globex")


@pytest.fixture
def a(tenants) -> APIClient:
    return _client(tenants[0])


@pytest.fixture
def b(tenants) -> APIClient:
    return _client(tenants[1])


def _job(client: APIClient, **body) -> str:
    response = client.post("/api/jobs", {"type": "simulation", **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["job_id"]


def test_another_tenants_job_is_not_found_for_reading_cancelling_or_its_timeline(a, b):
    job_id = _job(a)

    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/status", f"/api/jobs/{job_id}/events"):
        assert b.get(path).status_code == 404, path
        assert a.get(path).status_code == 200, path
    assert b.post(f"/api/jobs/{job_id}/cancel", {}, format="json").status_code == 404
    assert b.delete(f"/api/jobs/{job_id}").status_code == 404
    assert (
        Job.objects.get(pk=job_id).cancel_requested_at is None
        and Job.objects.get(pk=job_id).status == "pending"
    )
    assert b.get("/api/jobs").json()["pagination"]["total"] == 0
    assert b.get("/api/jobs/stats").json()["total"] == 0
    assert a.get("/api/jobs/stats").json()["total"] == 1


def test_idempotency_keys_are_unique_per_tenant_not_per_key(tenants, a, b):
    body = {"idempotency_key": "order-7"}
    first = _job(a, **body)
    assert _job(b, **body) != first  # another tenant: its own job
    same_tenant = _client(tenants[0]).post("/api/jobs", {"type": "simulation", **body}, format="json")
    assert same_tenant.status_code == 200 and same_tenant.json()["job_id"] == first


def test_another_tenants_workflow_is_not_found_and_cannot_be_cancelled_or_joined(a, b):
    created = a.post("/api/workflows", {"steps": [{"name": "s", "type": "simulation"}]}, format="json").json()
    workflow_id = created["workflow_id"]

    assert b.get(f"/api/workflows/{workflow_id}").status_code == 404
    assert b.post(f"/api/workflows/{workflow_id}/cancel", {}, format="json").status_code == 404
    assert b.get("/api/workflows").json()["pagination"]["total"] == 0
    assert a.get(f"/api/workflows/{workflow_id}").json()["workflow"]["status"] != "cancelled"

    # A client-driven workflow: B's step of the same name starts a workflow of B's own.
    _job(a, workflow_id="wf-acme-1", current_step=1, total_steps=2)
    _job(b, workflow_id="wf-acme-1", current_step=2, total_steps=2)
    assert Workflow.objects.get(tenant__name="acme", workflow_id="wf-acme-1").steps.count() == 1
    assert Workflow.objects.get(tenant__name="globex", workflow_id="wf-acme-1").steps.count() == 1


def test_client_driven_workflow_ids_live_in_each_tenants_own_namespace(tenants, a, b):
    b_first = _job(b, workflow_id="wf-1", current_step=1, total_steps=2)
    a_first = _job(a, workflow_id="wf-1", current_step=1, total_steps=1, priority=70)
    a_again = a.post(
        "/api/jobs", {"type": "simulation", "workflow_id": "wf-1", "current_step": 1}, format="json"
    )
    assert a_again.status_code == 409 and a_again.json()["error"]["code"] == "workflow_step_exists"

    for client, job_id, steps in ((a, a_first, 1), (b, b_first, 2)):
        workflow = client.get("/api/workflows/wf-1").json()["workflow"]
        assert (workflow["workflow_id"], workflow["total_steps"]) == ("wf-1", steps)
        assert [step["job_id"] for step in workflow["steps"]] == [job_id]
        listed = client.get("/api/jobs?workflow_id=wf-1").json()["jobs"]
        assert [job["job_id"] for job in listed] == [job_id]
        events = client.get("/api/events?workflow_id=wf-1&type=workflow_created").json()["events"]
        assert len(events) == 1
    assert Job.objects.get(pk=a_first).effective_priority == 70  # A's own workflow's priority
    assert Job.objects.get(pk=b_first).effective_priority == 50

    # An operator of A's tenant means A's workflow by that id; cancelling it leaves B's alone.
    operator = _client(tenants[0], role=Role.OPERATOR)
    assert operator.get("/api/workflows/wf-1").json()["workflow"]["total_steps"] == 1
    assert a.post("/api/workflows/wf-1/cancel", {}, format="json").json()["status"] == "cancelled"
    assert b.get("/api/workflows/wf-1").json()["workflow"]["status"] == "pending"


def test_another_tenants_schedule_is_not_found_for_reading_editing_or_deleting(a, b):
    body = {"name": f"nightly-{uuid.uuid4().hex[:6]}", "cron": "0 3 * * *", "job": {"type": "simulation"}}
    schedule_id = a.post("/api/schedules", body, format="json").json()["schedule"]["id"]

    assert b.get(f"/api/schedules/{schedule_id}").status_code == 404
    assert b.patch(f"/api/schedules/{schedule_id}", {"enabled": False}, format="json").status_code == 404
    assert b.delete(f"/api/schedules/{schedule_id}").status_code == 404
    assert b.get("/api/schedules").json()["pagination"]["total"] == 0
    assert a.get(f"/api/schedules/{schedule_id}").json()["schedule"]["enabled"] is True


def test_another_tenants_dead_letter_is_not_found_and_cannot_be_requeued(tenants, b):
    dead = dead_letter()
    Job.objects.filter(pk=dead.job_id).update(tenant=tenants[0])

    assert b.get(f"/api/dead-letters/{dead.pk}").status_code == 404
    assert b.post(f"/api/dead-letters/{dead.pk}/requeue").status_code == 404
    assert b.delete(f"/api/dead-letters/{dead.pk}").status_code == 404
    bulk = b.post("/api/dead-letters/requeue", {"filter": {}}, format="json").json()
    assert (bulk["matched"], bulk["requeued"]) == (0, 0)
    assert b.get("/api/dead-letters").json()["pagination"]["total"] == 0
    dead.refresh_from_db()
    assert dead.requeued_at is None


def test_another_tenants_webhook_endpoint_is_not_found(tenants, a, b, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    created = a.post("/api/webhooks", {"url": "http://127.0.0.1:9/hook"}, format="json")
    assert created.status_code == 201, created.json()
    endpoint_id = created.json()["webhook"]["id"]

    assert b.get(f"/api/webhooks/{endpoint_id}").status_code == 404
    assert b.patch(f"/api/webhooks/{endpoint_id}", {"enabled": False}, format="json").status_code == 404
    assert b.delete(f"/api/webhooks/{endpoint_id}").status_code == 404
    assert b.get("/api/webhooks").json()["pagination"]["total"] == 0
    assert a.get(f"/api/webhooks/{endpoint_id}").json()["webhook"]["enabled"] is True
    # The endpoint is the tenant's, not only its creator's: another key of A reaches it.
    assert _client(tenants[0]).get(f"/api/webhooks/{endpoint_id}").status_code == 200


def _endpoint(client: APIClient, path: str) -> WebhookEndpoint:
    created = client.post("/api/webhooks", {"url": f"http://127.0.0.1:9/{path}"}, format="json")
    assert created.status_code == 201, created.json()
    return WebhookEndpoint.objects.get(pk=created.json()["webhook"]["id"])


def test_an_endpoint_receives_only_its_own_tenants_events_and_the_fleets_only_for_operators(
    tenants, a, b, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    a_hook, b_hook = _endpoint(a, "a"), _endpoint(b, "b")
    operator_hook = _endpoint(_client(tenants[1], Role.OPERATOR), "operator")
    job_id = _job(a)
    record_machine_event(
        EventType.MACHINE_REGISTERED, "box-1", {"hostname": "box-1", "pool": "default", "gpu_count": 1}
    )

    fan_out_once(batch=1000)

    def received(endpoint: WebhookEndpoint) -> set[tuple[str, str | None]]:
        return {(d.event_type, d.job_id and str(d.job_id)) for d in endpoint.deliveries.all()}

    assert ("job_submitted", job_id) in received(a_hook)
    assert ("machine_registered", None) not in received(a_hook)
    assert received(b_hook) == set()
    assert received(operator_hook) == {("machine_registered", None)}  # its own tenant (B) had no work
    assert set(WebhookDelivery.objects.filter(endpoint=a_hook).values_list("tenant", flat=True)) == {
        tenants[0].pk
    }


def test_another_tenants_webhook_delivery_is_not_found_nor_redelivered(tenants, a, b, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    endpoint = _endpoint(a, "a")
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        url=endpoint.url,
        tenant=tenants[0],
        event_type="job_failed",
        message_id="msg_1",
        body="{}",
        status="dead_lettered",
        dead_lettered_at=timezone.now(),
    )

    assert b.get(f"/api/webhooks/deliveries/{delivery.pk}").status_code == 404
    assert b.post(f"/api/webhooks/deliveries/{delivery.pk}/redeliver").status_code == 404
    assert b.get("/api/webhooks/deliveries").json()["pagination"]["total"] == 0
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    bulk = b.post("/api/webhooks/deliveries/redeliver", {"since": since}, format="json").json()
    assert (bulk["matched"], bulk["redelivered"]) == (0, 0)
    delivery.refresh_from_db()
    assert delivery.status == "dead_lettered" and delivery.redelivery_count == 0
    assert a.get(f"/api/webhooks/deliveries/{delivery.pk}").status_code == 200


def test_each_tenant_has_its_own_default_signing_secret(a, b):
    rotated_a = a.post("/api/webhooks/default-secret/rotate", {}, format="json").json()["secret"]
    rotated_b = b.post("/api/webhooks/default-secret/rotate", {}, format="json").json()["secret"]
    assert rotated_a != rotated_b and DefaultSigningSecret.objects.count() == 2


def test_an_operator_reads_every_tenants_work_but_changes_only_its_own(tenants, a):
    job_id = _job(a)
    operator = _client(tenants[1], Role.OPERATOR)

    assert operator.get(f"/api/jobs/{job_id}").status_code == 200
    assert operator.get("/api/jobs").json()["pagination"]["total"] == 1
    assert operator.post(f"/api/jobs/{job_id}/cancel", {}, format="json").status_code == 404
    assert Job.objects.get(pk=job_id).status == "pending"


def test_an_operator_requeues_every_tenants_dead_letters_but_discards_only_its_own(tenants):
    theirs, mine = dead_letter(), dead_letter()
    Job.objects.filter(pk=theirs.job_id).update(tenant=tenants[0])
    Job.objects.filter(pk=mine.job_id).update(tenant=tenants[1])
    operator = _client(tenants[1], Role.OPERATOR)

    assert operator.delete(f"/api/dead-letters/{theirs.pk}").status_code == 404
    assert DeadLetterJob.objects.filter(pk=theirs.pk, requeued_at=None).exists()
    assert operator.post(f"/api/dead-letters/{theirs.pk}/requeue").status_code == 200
    assert operator.delete(f"/api/dead-letters/{mine.pk}").status_code == 204


def test_a_delegate_completes_only_its_own_tenants_jobs_whatever_its_role(tenants):
    job_id = _job(_client(tenants[0]), type="human_review")
    for role in (Role.CLIENT, Role.OPERATOR, Role.ADMIN):
        delegate = _client(tenants[1], role, can_complete_delegated=True)
        answer = delegate.post(f"/api/jobs/{job_id}/result", {"result": {"approved": True}}, format="json")
        assert answer.status_code == 404, role
    assert Job.objects.get(pk=job_id).status == "pending"
    own = _client(tenants[0], can_complete_delegated=True)
    assert own.post(f"/api/jobs/{job_id}/result", {"result": {}}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/machines"),
        ("get", "/api/machines/box-1"),
        ("post", "/api/machines/box-1/drain"),
        ("post", "/api/machines/box-1/resume"),
        ("get", "/api/workers"),
        ("get", "/api/pools"),
    ],
)
def test_a_client_key_cannot_reach_the_fleet(a, tenants, method, path):
    refused = getattr(a, method)(path)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "operator_role_required"
    allowed = getattr(_client(tenants[0], Role.OPERATOR), method)(path)
    assert allowed.status_code in (200, 404)  # 404: no such machine


def test_revoked_and_expired_keys_are_refused(tenants):
    tenant = tenants[0]
    expired = _client(tenant, expires_at=timezone.now() - timedelta(seconds=1))
    assert expired.get("/api/jobs").status_code == 401

    key, raw = ApiKey.issue("to-revoke", tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/jobs").status_code == 200
    key.revoke()
    assert client.get("/api/jobs").status_code == 401


def test_work_submitted_without_a_key_belongs_to_the_default_tenant():
    assert make_job().tenant == Tenant.default()  # make_job submits with no key


def test_schedule_names_are_unique_per_tenant(a, b):
    body = {"name": "nightly", "cron": "0 3 * * *", "job": {"type": "simulation"}}
    assert a.post("/api/schedules", body, format="json").status_code == 201
    assert b.post("/api/schedules", body, format="json").status_code == 201  # another tenant's
    again = a.post("/api/schedules", body, format="json")
    assert again.status_code == 400
    assert (
        again.json()["error"]["field"] == "name"
        and again.json()["error"]["details"]["fields"]["name"][0]["code"] == "unique"
    )


def test_the_event_log_carries_the_tenant_and_api_events_shows_only_the_callers(tenants, a, b):
    from events.models import Event

    job_id = _job(a)
    workflow = a.post(
        "/api/workflows", {"steps": [{"name": "s", "type": "simulation"}]}, format="json"
    ).json()

    events = Event.objects.filter(job_id=job_id) | Event.objects.filter(workflow_id=workflow["workflow_id"])
    assert events.exists() and set(events.values_list("tenant_id", flat=True)) == {tenants[0].pk}
    assert b.get("/api/events").json()["events"] == []
    seen_by_a = {e["job_id"] for e in a.get("/api/events").json()["events"]}
    assert job_id in seen_by_a
    operator = _client(tenants[1], Role.OPERATOR)
    assert job_id in {e["job_id"] for e in operator.get("/api/events?limit=1000").json()["events"]}
