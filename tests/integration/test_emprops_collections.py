"""`/api/emprops/collections` against the EmProps stand-in: a collection is made on EmProps and its
generations are workflows here; bad input never reaches EmProps; EmProps' refusals and outages are
passed on clearly."""

from __future__ import annotations

import uuid

import pytest

from workflows.models import Workflow

pytestmark = pytest.mark.django_db

DEFINITION = {
    "steps": [
        {"name": "generate", "type": "simulation", "payload": {"prompt": "a cat"}},
        {"name": "upscale", "type": "simulation", "depends_on": ["generate"]},
    ],
    "variables": {"style": "ink"},
}


@pytest.fixture
def api_key(db):
    """EmProps' own key: allowed to speak for it."""
    from accounts.models import ApiKey

    return ApiKey.issue(f"emprops-{uuid.uuid4().hex[:8]}", speaks_for_emprops=True)


@pytest.fixture
def emprops(emprops_standin, settings):
    settings.EMPROPS_API_URL, settings.EMPROPS_API_KEY = emprops_standin.url, emprops_standin.api_key
    settings.EMPROPS_RETRIES = 0
    return emprops_standin


def test_a_collection_is_made_on_emprops_and_generated_here(api, emprops):
    made = api.post(
        "/api/emprops/collections", {"name": "Cats", "data": DEFINITION, "generate": True}, format="json"
    )

    assert made.status_code == 201, made.json()
    collection, [workflow] = made.json()["collection"], made.json()["workflows"]
    [sent] = emprops.at("POST", "/collections")
    assert sent.body == {"name": "Cats", "description": "", "data": DEFINITION}
    stored = Workflow.objects.get(workflow_id=workflow["workflow_id"])
    assert (stored.source, stored.metadata["collection_id"], stored.total_steps) == (
        "emprops",
        collection["id"],
        2,
    )

    again = api.post(
        f"/api/emprops/collections/{collection['id']}/generations", {"priority": 80}, format="json"
    )
    assert again.status_code == 201
    shown = api.get(f"/api/emprops/collections/{collection['id']}").json()
    assert shown["collection"]["name"] == "Cats" and shown["collection"]["status"] == "draft"
    assert [w["workflow_id"] for w in shown["workflows"]] == [
        again.json()["workflows"][0]["workflow_id"],
        stored.workflow_id,
    ]
    assert all("progress" in w for w in shown["workflows"])


def test_a_bad_collection_is_a_400_naming_the_field_and_emprops_never_hears_of_it(api, emprops):
    bad = {**DEFINITION, "steps": [{"name": "generate", "type": "simulation", "depends_on": ["nowhere"]}]}
    answers = [
        api.post("/api/emprops/collections", {"name": "Cats", "data": bad, "generate": True}, format="json"),
        api.post("/api/emprops/collections", {"data": DEFINITION}, format="json"),
        api.post("/api/emprops/collections", {"name": "Cats", "data": {"steps": []}}, format="json"),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert [a.json()["error"]["field"].split(".")[0] for a in answers] == ["steps", "name", "data"]
    assert emprops.requests == [] and not Workflow.objects.exists()


def test_emprops_refusals_outages_and_unknown_collections_are_passed_on_clearly(api, emprops):
    body = {"name": "Cats", "data": DEFINITION}
    emprops.script("/collections", "422")
    refused = api.post("/api/emprops/collections", body, format="json")
    emprops.script("/collections", "503")
    down = api.post("/api/emprops/collections", body, format="json")
    unknown = api.get(f"/api/emprops/collections/{uuid.uuid4()}")

    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "emprops_refused")
    assert (down.status_code, down.json()["error"]["code"], down["Retry-After"]) == (
        503,
        "emprops_unavailable",
        "5",
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "collection_not_found")
    assert api.get("/api/emprops/collections/not-a-uuid").status_code == 404
    assert not Workflow.objects.exists()
