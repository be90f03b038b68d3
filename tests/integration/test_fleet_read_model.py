"""The fleet has one read model (`dispatch/fleet.py`): the API's machines and workers and the monitor's
snapshot show the same fields and judge liveness the same way, at read time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from live.snapshot import full_state
from machines.models import Machine, MachineStatus, Worker
from tests.factories import make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_api(operator_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=operator_key[1])
    return client


def test_the_monitor_shows_each_worker_as_the_api_does(operator_api, operator_key):
    worker = make_worker(models=("flux-dev",))

    [shown] = operator_api.get("/api/workers").json()["workers"]
    [snapshot] = full_state(operator_key[0])["workers"]

    assert snapshot.keys() == shown.keys()
    assert (snapshot["id"], snapshot["models"], snapshot["live"]) == (worker.id, ["flux-dev"], True)
    assert shown["live"] is True


def test_a_machine_whose_workers_all_fell_silent_is_offline_before_any_sweep_records_it(
    operator_api, operator_key
):
    worker = make_worker()
    Machine.objects.create(
        id=worker.machine_id, hostname="box", pool=worker.pool, status=MachineStatus.ONLINE
    )
    Worker.objects.filter(pk=worker.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))

    machine = operator_api.get(f"/api/machines/{worker.machine_id}").json()["machine"]
    snapshot = full_state(operator_key[0])

    assert machine["status"] == MachineStatus.OFFLINE
    assert machine["workers"][0]["live"] is False
    assert snapshot["machines"] == [{"id": worker.machine_id, "workers": [worker.id], "live": False}]
    assert Machine.objects.get(pk=worker.machine_id).status == MachineStatus.ONLINE  # nothing written
