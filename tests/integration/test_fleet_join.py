"""Joining the fleet (`POST /api/fleet/join`): a join token buys one worker credential unless made
for more, a revoked worker id is not taken back by joining, and joins are rate-limited per address."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from machines import credentials
from machines.models import JoinToken, WorkerCredential

pytestmark = pytest.mark.django_db(transaction=True)


def _join(token: str, worker_id: str | None = None, address: str = "192.0.2.10"):
    return APIClient().post(
        "/api/fleet/join",
        {"worker_id": worker_id or f"w-{uuid.uuid4().hex[:6]}"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        REMOTE_ADDR=address,
    )


def _error(answer) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def test_a_join_token_is_single_use_unless_made_for_more():
    _, once = credentials.create_join_token("one-host", "standard", expires_in=timedelta(hours=1))
    _, thrice = credentials.create_join_token(
        "three-hosts", "standard", expires_in=timedelta(hours=1), max_workers=3
    )

    assert _join(once).status_code == 201
    assert _error(_join(once)) == (403, "join_token_refused")
    assert [_join(thrice).status_code for _ in range(4)] == [201, 201, 201, 403]


def test_a_join_token_made_over_the_api_is_single_use_by_default(operator_key):
    operator = APIClient()
    operator.credentials(HTTP_X_API_KEY=operator_key[1])

    made = operator.post("/api/join-tokens", {"name": "api-made", "pool": "standard"}, format="json")

    assert made.status_code == 201 and made.json()["join_token"]["max_workers"] == 1
    any_number = operator.post(
        "/api/join-tokens", {"name": "fleet-wide", "pool": "standard", "max_workers": None}, format="json"
    )
    assert any_number.json()["join_token"]["max_workers"] is None


def test_a_revoked_worker_id_is_not_taken_back_by_joining():
    _, token = credentials.create_join_token(
        "hosts", "standard", expires_in=timedelta(hours=1), max_workers=5
    )
    assert _join(token, "gpu-7").status_code == 201
    credentials.revoke(WorkerCredential.objects.get(pk="gpu-7"))

    assert _error(_join(token, "gpu-7")) == (409, "worker_id_revoked")
    assert WorkerCredential.objects.get(pk="gpu-7").revoked_at is not None
    assert JoinToken.objects.get(name="hosts").joined == 1  # the refused join used nothing up

    credentials.issue("gpu-7", "standard")  # an operator may give the id out again, on purpose
    assert WorkerCredential.objects.get(pk="gpu-7").revoked_at is None


def test_joins_are_rate_limited_per_address(settings):
    settings.FLEET_JOINS_PER_MINUTE = 3
    address, other = (f"10.{random.randrange(256)}.{random.randrange(256)}.{n}" for n in (1, 2))
    # Seven tries: a minute's window may turn over once among them, and still some are held up.
    guessed = [_join("jqj_guessed", address=address) for _ in range(7)]

    assert [a.status_code for a in guessed[:3]] == [403, 403, 403]
    held_up = [a for a in guessed if a.status_code == 429]
    assert held_up and _error(held_up[0]) == (429, "throttled") and int(held_up[0]["Retry-After"]) <= 60
    assert _join("jqj_guessed", address=other).status_code == 403  # another address is not held up
