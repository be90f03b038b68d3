"""What a key leaves running when it is cut off: its schedules pause while it is revoked,
deactivated or expired (and are disabled, with an event, when it is deleted); its webhook endpoints
receive nothing meanwhile, and their pending deliveries are dead-lettered unsent."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from events.models import Event
from jobqueue.models import Job, JobSchedule
from jobqueue.tasks import run_due_schedules
from tests.factories import make_job
from webhooks.delivery import attempt
from webhooks.fanout import fan_out_once
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def _keyed_client() -> tuple[ApiKey, APIClient]:
    key, raw = ApiKey.issue(f"author-{uuid.uuid4().hex[:8]}")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return key, client


def _due_schedule(client: APIClient) -> str:
    body = {"name": "hourly", "interval_seconds": 3600, "job": {"type": "simulation"}}
    schedule_id = client.post("/api/schedules", body, format="json").json()["schedule"]["id"]
    JobSchedule.objects.filter(pk=schedule_id).update(next_run_at=timezone.now() - timedelta(seconds=1))
    return schedule_id


@pytest.mark.parametrize(
    "cut_off",
    [
        lambda key: key.revoke(),
        lambda key: ApiKey.objects.filter(pk=key.pk).update(is_active=False),
        lambda key: ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1)),
    ],
    ids=["revoked", "deactivated", "expired"],
)
def test_a_cut_off_keys_schedule_submits_nothing(cut_off):
    key, client = _keyed_client()
    _due_schedule(client)
    cut_off(key)

    assert run_due_schedules() == 0
    assert not Job.objects.exists()


def test_a_deactivated_keys_schedule_runs_once_when_its_key_is_active_again():
    key, client = _keyed_client()
    _due_schedule(client)
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    assert run_due_schedules() == 0

    ApiKey.objects.filter(pk=key.pk).update(is_active=True)

    assert run_due_schedules() == 1
    assert Job.objects.count() == 1


def test_a_deleted_keys_schedule_is_disabled_and_says_why():
    key, client = _keyed_client()
    schedule_id = _due_schedule(client)

    key.delete()

    assert run_due_schedules() == 0
    schedule = JobSchedule.objects.get(pk=schedule_id)
    assert not schedule.enabled and "deleted" in schedule.last_error
    assert Event.objects.filter(type="schedule_disabled", payload__schedule_id=schedule_id).exists()


def _endpoint(client: APIClient, settings) -> WebhookEndpoint:
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    created = client.post("/api/webhooks", {"url": "http://127.0.0.1:9/hook"}, format="json")
    assert created.status_code == 201, created.json()
    return WebhookEndpoint.objects.get(pk=created.json()["webhook"]["id"])


def test_a_revoked_keys_endpoint_receives_nothing_new_and_its_pending_deliveries_stop_unsent(settings):
    key, client = _keyed_client()
    endpoint = _endpoint(client, settings)
    make_job()
    fan_out_once(batch=1000)
    pending = WebhookDelivery.objects.get(endpoint=endpoint)
    token = uuid.uuid4()
    WebhookDelivery.objects.filter(pk=pending.pk).update(lease_token=token)

    key.revoke()
    make_job()
    fan_out_once(batch=1000)
    attempt(pending.pk, str(token))

    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1  # nothing new
    pending.refresh_from_db()
    assert (pending.status, pending.dead_letter_reason) == ("dead_lettered", "key_unusable")
    assert not pending.attempts.exists()


def test_a_deleted_keys_endpoint_is_disabled_with_an_event(settings):
    key, client = _keyed_client()
    endpoint = _endpoint(client, settings)

    key.delete()

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "deleted" in endpoint.disabled_reason
    assert Event.objects.filter(
        type="webhook_endpoint_disabled", payload__endpoint_id=str(endpoint.pk)
    ).exists()
