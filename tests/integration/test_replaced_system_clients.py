"""What the replaced system's clients send keeps working (its spellings, its routes), browsers on
listed origins may call the API, and a client can ask what is running."""

from __future__ import annotations

import pytest

from jobqueue.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_api(operator_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=operator_key[1])
    return client


def test_job_type_filters_the_job_list_as_type_does(api, submit):
    upscale = submit(type="upscale")
    submit(type="sdxl")
    listed = api.get("/api/jobs?job_type=upscale").json()["jobs"]
    assert [job["job_id"] for job in listed] == [upscale]


@pytest.mark.parametrize(
    "path", ["/api/jobs?jobtype=upscale", "/api/workflows?stauts=running", "/api/workers?pol=a"]
)
def test_an_unknown_query_parameter_is_a_400_naming_it(operator_api, path):
    answer = operator_api.get(path)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == path.split("?")[1].split("=")[0]


def test_workflows_can_be_created_at_the_replaced_systems_route(api):
    body = {"steps": [{"name": "only", "type": "simulation"}]}
    created = api.post("/api/workflows/create", body, format="json")
    assert created.status_code == 201
    assert api.get(f"/api/workflows/{created.json()['workflow_id']}").status_code == 200


def test_timeout_ms_is_a_timeout_in_whole_seconds_rounded_up(api, submit):
    job_id = submit(type="simulation", timeout_ms=1500)
    assert Job.objects.get(pk=job_id).timeout_seconds == 2
    both = api.post(
        "/api/jobs", {"type": "simulation", "timeout_ms": 1000, "timeout_seconds": 5}, format="json"
    )
    assert (both.status_code, both.json()["error"]["field"]) == (400, "timeout_seconds")


def test_browsers_on_listed_origins_may_call_the_api_and_no_others(client, settings):
    def preflight(origin: str):
        return client.options(
            "/api/jobs",
            HTTP_ORIGIN=origin,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key, content-type",
        )

    assert (
        "access-control-allow-origin" not in preflight("https://app.example.com").headers
    )  # none by default
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = preflight("https://app.example.com").headers
    assert allowed["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in allowed["access-control-allow-headers"]
    assert "access-control-allow-origin" not in preflight("https://evil.example.com").headers


def test_version_says_what_is_running(client):
    answer = client.get("/version").json()
    assert answer["version"] == "0.1.0" and answer["api_schema_version"]
    assert len(answer["commit"]) == 40  # this checkout's commit
