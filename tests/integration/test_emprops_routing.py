"""Who may steer the install's own EmProps key: only keys allowed to speak for EmProps route a
workflow to it or use its collections, a client's workflow id cannot reach another path on EmProps'
host, and a collection is its own tenant's."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Tenant
from emprops.client import EmpropsClient, EmpropsPermanent, path
from emprops.models import EmpropsCollection, EmpropsNotification, NotificationStatus
from emprops.notifications import notify_due
from jobqueue.models import Job
from workflows.models import Workflow, WorkflowMode, WorkflowStatus

pytestmark = pytest.mark.django_db

STEPS = [{"name": "generate", "type": "simulation", "payload": {"prompt": "a cat"}}]


def _client(tenant: Tenant | None = None, **key_fields) -> APIClient:
    client = APIClient()
    raw = ApiKey.issue(f"key-{uuid.uuid4().hex[:8]}", tenant=tenant, **key_fields)[1]
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def emprops(emprops_standin, settings):
    settings.EMPROPS_API_URL, settings.EMPROPS_API_KEY = emprops_standin.url, emprops_standin.api_key
    settings.EMPROPS_RETRIES = 0
    return emprops_standin


def test_a_client_key_cannot_route_a_workflow_to_emprops_and_nothing_is_created():
    client = _client()
    defined = client.post("/api/workflows", {"steps": STEPS, "source": "emprops"}, format="json")
    stepped = client.post(
        "/api/jobs",
        {"type": "simulation", "workflow_id": "wf-1", "current_step": 1, "metadata": {"source": "emprops"}},
        format="json",
    )

    assert defined.status_code == stepped.status_code == 403
    assert (defined.json()["error"]["code"], defined.json()["error"]["field"]) == (
        "emprops_not_allowed",
        "source",
    )
    assert (stepped.json()["error"]["code"], stepped.json()["error"]["field"]) == (
        "emprops_not_allowed",
        "metadata.source",
    )
    assert not Workflow.objects.exists() and not Job.objects.exists()


def test_a_key_allowed_to_speak_for_emprops_routes_its_workflows_there():
    client = _client(speaks_for_emprops=True)
    answer = client.post("/api/workflows", {"steps": STEPS, "source": "emprops"}, format="json")

    assert answer.status_code == 201, answer.json()
    assert Workflow.objects.get(workflow_id=answer.json()["workflow_id"]).source == "emprops"


@pytest.mark.parametrize("workflow_id", ["../../pwn?", "a/b", "x#y", "%2e%2e", "..", "-leading", "a b", "é"])
def test_a_workflow_id_that_a_url_would_read_as_structure_is_refused(workflow_id):
    answer = _client(speaks_for_emprops=True).post(
        "/api/jobs",
        {"type": "simulation", "workflow_id": workflow_id, "metadata": {"source": "emprops"}},
        format="json",
    )

    assert answer.status_code == 400
    assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == (
        "validation_error",
        "workflow_id",
    )
    assert not Workflow.objects.exists() and not Job.objects.exists()


def test_an_existing_workflows_id_is_sent_to_emprops_as_one_encoded_segment(emprops):
    # A row from before ids had a pattern: whatever its id, EmProps hears of it at its own path only.
    workflow = Workflow.objects.create(
        workflow_id="../../pwn?x=1#",
        mode=WorkflowMode.CLIENT,
        source="emprops",
        status=WorkflowStatus.COMPLETED,
        tenant=Tenant.default(),
    )
    notification = EmpropsNotification.objects.create(event_id=1, workflow=workflow, outcome="completed")

    assert notify_due(client=EmpropsClient(emprops.url, emprops.api_key)) == 1

    assert [r.path for r in emprops.requests] == ["/jobs/..%2F..%2Fpwn%3Fx%3D1%23/complete"]
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.NOTIFIED


def test_an_emprops_path_is_built_of_encoded_segments_and_refuses_a_step_up():
    assert path("jobs", "a/b?c#d", "complete") == "/jobs/a%2Fb%3Fc%23d/complete"
    for step in ("..", ".", ""):
        with pytest.raises(EmpropsPermanent):
            path("jobs", step, "complete")


def test_collections_need_a_key_allowed_to_speak_for_emprops(emprops):
    client = _client()
    answers = [
        client.post("/api/emprops/collections", {"name": "Cats", "data": {"steps": STEPS}}, format="json"),
        client.get(f"/api/emprops/collections/{uuid.uuid4()}"),
        client.post(f"/api/emprops/collections/{uuid.uuid4()}/generations", {}, format="json"),
    ]

    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(403, "emprops_not_allowed")] * 3
    assert emprops.requests == []


def test_another_tenants_collection_is_not_found_and_emprops_is_not_asked(emprops):
    a = _client(Tenant.objects.create(name="a"), speaks_for_emprops=True)
    b = _client(Tenant.objects.create(name="b"), speaks_for_emprops=True)
    made = a.post("/api/emprops/collections", {"name": "Cats", "data": {"steps": STEPS}}, format="json")
    assert made.status_code == 201, made.json()
    collection_id = made.json()["collection"]["id"]
    asked = len(emprops.requests)

    read = b.get(f"/api/emprops/collections/{collection_id}")
    generated = b.post(f"/api/emprops/collections/{collection_id}/generations", {}, format="json")

    assert [(r.status_code, r.json()["error"]["code"]) for r in (read, generated)] == [
        (404, "collection_not_found")
    ] * 2
    assert len(emprops.requests) == asked and not Workflow.objects.filter(tenant__name="b").exists()
    assert a.get(f"/api/emprops/collections/{collection_id}").status_code == 200
    assert EmpropsCollection.objects.get().tenant.name == "a"
