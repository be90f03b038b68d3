"""Every list is paged with a bound, and counts stop at API_COUNT_MAX: the fleet's lists, a job's
timeline and the jobs list."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Role
from events.recording import record_job_event
from events.types import EventType
from machines.models import Machine
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKey.issue("pager", role=Role.OPERATOR)[1])
    return client


def _pages(client: APIClient, path: str, key: str, limit: int) -> list[list]:
    pages, offset = [], 0
    while True:
        body = client.get(f"{path}?limit={limit}&offset={offset}").json()
        pages.append(body[key])
        if not body["pagination"]["has_more"]:
            return pages
        offset += limit


def test_workers_and_machines_are_paged(operator):
    workers = [make_worker() for _ in range(5)]
    for machine_id in ("box-a", "box-b", "box-c"):
        Machine.objects.create(id=machine_id, hostname=machine_id, pool="standard")

    worker_pages = _pages(operator, "/api/workers", "workers", limit=2)
    machine_pages = _pages(operator, "/api/machines", "machines", limit=2)

    assert [len(p) for p in worker_pages] == [2, 2, 1]
    assert sorted(w["id"] for p in worker_pages for w in p) == sorted(w.id for w in workers)
    assert [[m["id"] for m in p] for p in machine_pages] == [["box-a", "box-b"], ["box-c"]]
    assert operator.get("/api/workers?limit=100000").status_code == 400  # the bound


def test_a_jobs_timeline_is_paged_oldest_first(api):
    job = make_job()
    for step in range(4):
        record_job_event(EventType.JOB_PROGRESS, job, {"progress": step * 10, "stage": f"step {step}"})
    answer = api.get(f"/api/jobs/{job.pk}/events?limit=2").json()
    rest = api.get(f"/api/jobs/{job.pk}/events?limit=2&offset=2").json()

    assert [e["type"] for e in answer["events"]] == ["job_submitted", "job_progress"]
    assert answer["pagination"]["has_more"] and answer["pagination"]["total"] == 5
    assert [e["payload"]["progress"] for e in rest["events"]] == [10, 20]


def test_a_count_stops_at_its_bound_and_says_so(api, settings):
    settings.API_COUNT_MAX = 3
    for _ in range(5):
        make_job()

    pagination = api.get("/api/jobs?limit=2").json()["pagination"]

    assert pagination == {"limit": 2, "offset": 0, "total": 3, "total_exact": False, "has_more": True}
    last = api.get("/api/jobs?limit=2&offset=4").json()["pagination"]
    assert (last["total"], last["total_exact"], last["has_more"]) == (3, False, False)
