"""The admin API for tenants and keys, tenants' quotas, and customer ids bound to one tenant."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Customer, Role, Tenant
from jobqueue.models import Job, JobSchedule
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def _client(tenant: Tenant, role: str = Role.CLIENT) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKey.issue(f"k-{uuid.uuid4().hex[:8]}", tenant=tenant, role=role)[1])
    return client


@pytest.fixture
def tenant() -> Tenant:
    return Tenant.objects.create(name="acme")


@pytest.fixture
def admin(tenant) -> APIClient:
    return _client(Tenant.default(), Role.ADMIN)


@pytest.mark.parametrize("role", [Role.CLIENT, Role.OPERATOR])
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/tenants"), ("post", "/api/tenants"), ("get", "/api/keys"), ("post", "/api/keys")],
)
def test_tenants_and_keys_need_an_admin_key(tenant, role, method, path):
    client = _client(tenant, role)
    before = Tenant.objects.count(), ApiKey.objects.count()
    refused = getattr(client, method)(path, {"name": "new"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_role_required"
    assert (Tenant.objects.count(), ApiKey.objects.count()) == before


def test_an_admin_creates_a_tenant_with_quotas_and_a_key_that_works_once_shown(admin):
    created = admin.post("/api/tenants", {"name": "globex", "max_schedules": 3}, format="json")
    assert created.status_code == 201, created.json()
    tenant = created.json()["tenant"]
    assert tenant["quotas"]["max_schedules"] == 3 and tenant["max_queued_jobs"] is None

    issued = admin.post(
        "/api/keys", {"name": "globex-app", "tenant_id": tenant["id"], "expires_in_days": 30}, format="json"
    )
    assert issued.status_code == 201, issued.json()
    raw, shown = issued.json()["key"], issued.json()["api_key"]
    assert shown["role"] == "client" and shown["expires_at"] and "key_hash" not in shown
    assert raw not in str(admin.get(f"/api/keys/{shown['id']}").json())  # shown once only

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/jobs").status_code == 200
    listed = admin.get(f"/api/keys?tenant_id={tenant['id']}").json()
    assert [k["name"] for k in listed["keys"]] == ["globex-app"]

    revoked = admin.post(f"/api/keys/{shown['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["api_key"]["revoked_at"]
    assert client.get("/api/jobs").status_code == 401


def test_bad_admin_requests_are_400s_naming_the_field_and_create_nothing(admin, tenant):
    before = Tenant.objects.count(), ApiKey.objects.count()
    cases = [
        ("/api/tenants", {"name": "acme"}, "name"),
        ("/api/tenants", {"name": "x", "max_schedules": -1}, "max_schedules"),
        ("/api/tenants", {"name": "x", "colour": "blue"}, "colour"),
        ("/api/keys", {"name": "k", "tenant_id": 999999}, "tenant_id"),
        ("/api/keys", {"name": "k", "role": "superuser"}, "role"),
        ("/api/keys", {"name": "k", "expires_in_days": 0}, "expires_in_days"),
        ("/api/tenants", {"name": "x", "fair_share_weight": 0}, "fair_share_weight"),
        ("/api/tenants", {"name": "x", "max_running_jobs": 0}, "max_running_jobs"),
        ("/api/tenants", {"name": "x", "concurrency_limits": {"user-1": 0}}, "concurrency_limits.user-1"),
        ("/api/tenants", {"name": "x", "concurrency_limits": ["user-1"]}, "concurrency_limits"),
    ]
    for path, body, field in cases:
        response = admin.post(path, body, format="json")
        assert response.status_code == 400, (body, response.json())
        assert response.json()["error"]["field"] == field
    assert (Tenant.objects.count(), ApiKey.objects.count()) == before
    assert admin.get("/api/tenants/999999").status_code == 404
    assert admin.get(f"/api/keys/{'9' * 30}").status_code == 404  # past bigint: no such URL


def test_a_tenants_submit_rate_is_limited_with_429_and_retry_after(tenant):
    tenant.max_submits_per_second = 3
    tenant.save()
    client = _client(tenant)
    batch = client.post("/api/jobs/batch", {"jobs": [{"type": "simulation"}] * 3}, format="json")
    assert batch.status_code == 201

    refused = client.post("/api/jobs", {"type": "simulation"}, format="json")
    if refused.status_code == 201:  # the batch and this call fell in two seconds: fill this one
        for _ in range(3):
            refused = client.post("/api/jobs", {"type": "simulation"}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "submit_rate_exceeded"
    assert refused["Retry-After"] == "1"
    assert Job.objects.filter(tenant=tenant).count() <= 6  # within two one-second windows


def test_a_tenants_queued_jobs_are_limited_and_other_tenants_are_not(tenant):
    tenant.max_queued_jobs = 2
    tenant.save()
    client, other = _client(tenant), _client(Tenant.objects.create(name="other"))
    for _ in range(2):
        assert client.post("/api/jobs", {"type": "nobody-runs-this"}, format="json").status_code == 201

    refused = client.post("/api/jobs", {"type": "nobody-runs-this"}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queued_jobs_quota_exceeded"
    workflow = client.post("/api/workflows", {"steps": [{"name": "s", "type": "simulation"}]}, format="json")
    assert workflow.status_code == 429
    assert other.post("/api/jobs", {"type": "nobody-runs-this"}, format="json").status_code == 201
    assert Job.objects.filter(tenant=tenant).count() == 2


def test_a_tenants_schedules_and_webhook_endpoints_are_limited(tenant, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    tenant.max_schedules = 1
    tenant.max_webhook_endpoints = 1
    tenant.save()
    client = _client(tenant)
    schedule = {"cron": "0 3 * * *", "job": {"type": "simulation"}}
    assert client.post("/api/schedules", {"name": "a", **schedule}, format="json").status_code == 201
    refused = client.post("/api/schedules", {"name": "b", **schedule}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "quota_reached"
    hook = {"url": "http://127.0.0.1:9/hook"}
    assert client.post("/api/webhooks", hook, format="json").status_code == 201
    assert client.post("/api/webhooks", hook, format="json").status_code == 409
    assert JobSchedule.objects.filter(tenant=tenant).count() == 1
    assert WebhookEndpoint.objects.filter(tenant=tenant).count() == 1


def test_default_quotas_come_from_settings(tenant, settings):
    settings.TENANT_MAX_SCHEDULES = 7
    assert tenant.quota("max_schedules") == 7
    tenant.max_schedules = 2
    assert tenant.quota("max_schedules") == 2


def test_customer_ids_are_each_tenants_own_and_naming_one_neither_blocks_nor_tells(tenant):
    mine, theirs = _client(tenant), _client(Tenant.objects.create(name="globex"))
    body = {"type": "simulation", "customer_id": "cust-42"}
    assert theirs.post("/api/jobs", body, format="json").status_code == 201  # they name it first

    single = mine.post("/api/jobs", body, format="json")
    batch = mine.post("/api/jobs/batch", {"jobs": [{"type": "simulation"}, body]}, format="json")

    assert (single.status_code, batch.status_code) == (201, 201)
    assert Job.objects.filter(customer_id="cust-42", tenant=tenant).count() == 2
    owners = Customer.objects.filter(customer_id="cust-42").values_list("tenant__name", flat=True)
    assert sorted(owners) == sorted(["globex", tenant.name])


def test_an_admin_key_cannot_revoke_itself(admin):
    own_id = admin.get("/api/keys").json()["keys"][0]["id"]
    refused = admin.post(f"/api/keys/{own_id}/revoke")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cannot_revoke_own_key"
    assert admin.get("/api/keys").status_code == 200


def test_the_django_admin_shows_tenants_customers_and_keys_and_revokes_keys(admin_client, tenant):
    key, _ = ApiKey.issue("admin-shown", tenant=tenant)
    Customer.objects.create(customer_id="cust-admin", tenant=tenant)

    assert b"acme" in admin_client.get("/admin/accounts/tenant/").content
    assert b"cust-admin" in admin_client.get(f"/admin/accounts/tenant/{tenant.pk}/change/").content
    assert b"admin-shown" in admin_client.get("/admin/accounts/apikey/").content
    admin_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_usable()


def test_while_redis_is_unreachable_jobs_are_admitted_and_queued_jobs_counted_in_postgres(tenant, settings):
    from core.redis import redis_client

    tenant.max_queued_jobs = 1
    tenant.save()
    client = _client(tenant)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_client.cache_clear()
    try:
        first = client.post("/api/jobs", {"type": "nobody-runs-this"}, format="json")
        second = client.post("/api/jobs", {"type": "nobody-runs-this"}, format="json")
    finally:
        redis_client.cache_clear()

    assert first.status_code == 201
    assert second.status_code == 429 and second.json()["error"]["code"] == "queued_jobs_quota_exceeded"


def test_an_admin_sets_a_tenants_share_and_limits(admin, tenant):
    changed = admin.patch(
        f"/api/tenants/{tenant.pk}",
        {"fair_share_weight": 3, "max_running_jobs": 10, "concurrency_limits": {"user-42": 2}},
        format="json",
    )

    assert changed.status_code == 200, changed.json()
    shown = admin.get(f"/api/tenants/{tenant.pk}").json()["tenant"]
    assert (shown["fair_share_weight"], shown["max_running_jobs"]) == (3, 10)
    assert shown["concurrency_limits"] == {"user-42": 2}
