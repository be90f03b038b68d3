"""What one WebSocket may hold, against the real ASGI server: an id in its URL that fits where it
travels, at most LIVE_MAX_SUBSCRIPTIONS subscriptions, and no group membership left behind when it
closes (the real channel layer on Redis, read here)."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from websockets.exceptions import ConnectionClosed

from events.relay import ALL_EVENTS_GROUP, group_for
from jobqueue.models import Job
from tests.acceptance.test_live import Client
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _members(group: str) -> int:
    """How many channels the layer holds in `group` (its sorted set in Redis)."""
    layer = get_channel_layer()

    async def count() -> int:
        return int(await layer.connection(layer.consistent_hash(group)).zcard(layer._group_key(group)))

    return async_to_sync(count)()


def test_a_client_id_that_would_not_fit_its_correlation_id_is_refused_and_the_socket_closed(
    live_stack, api_key
):
    client = Client(f"{live_stack.ws_url}/client/{'c' * 200}?token={api_key[1]}")
    messages = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            messages.append(client.next())

    error = next(m for m in messages if m["type"] == "error")
    assert (error["code"], error["field"]) == ("invalid_id", "client_id")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


def test_a_client_id_within_the_pattern_names_its_jobs_correlation_id(live_stack, api_key):
    client_id = "emprops-" + "c" * 56
    client = Client(f"{live_stack.ws_url}/client/{client_id}?token={api_key[1]}")
    assert client.next()["type"] == "authenticated"
    client.send(type="submit_job", job_type="simulation", payload={})
    answer = client.next()
    client.close()

    assert answer["type"] == "job_submitted", answer
    assert Job.objects.get(pk=answer["job_id"]).correlation_id == f"ws-client:{client_id}"


def test_a_socket_follows_at_most_the_subscription_limit_and_may_swap_one(live_stack, api_key):
    limit = live_stack.max_subscriptions
    ids = [str(uuid.uuid4()) for _ in range(limit + 1)]
    client = Client(f"{live_stack.ws_url}?api_key={api_key[1]}")
    assert client.next()["type"] == "authenticated"
    for job_id in ids:  # sent in one go, read after: the limit is not a matter of pace
        client.send(type="subscribe_job", job_id=job_id)
    answers = [client.next() for _ in ids]
    client.send(type="unsubscribe_job", job_id=ids[0])
    client.send(type="subscribe_job", job_id=ids[-1])
    swapped = [client.next(), client.next()]
    client.close()

    assert [a["type"] for a in answers[:limit]] == ["subscribed"] * limit
    assert (answers[-1]["type"], answers[-1]["code"]) == ("error", "too_many_subscriptions")
    assert [a["type"] for a in swapped] == ["unsubscribed", "subscribed"]


def test_a_closed_socket_leaves_every_group_it_joined_on_every_route(live_stack, api_key, operator_key):
    job_id = str(uuid.uuid4())
    live = Client(f"{live_stack.ws_url}?api_key={api_key[1]}")
    compat = Client(f"{live_stack.ws_url}/client/emprops-1?token={api_key[1]}")
    monitor = Client(f"{live_stack.ws_url}/monitor/monitor-1?token={operator_key[1]}")
    for client in (live, compat, monitor):
        assert client.next()["type"] == "authenticated"
    live.send(type="subscribe_all")
    live.send(type="subscribe_job", job_id=job_id)
    compat.send(type="submit_job", job_type="simulation", payload={})
    monitor.send(type="subscribe", topics=["jobs"])
    live.next(), live.next(), monitor.next()
    submitted = compat.until(lambda m: m["type"] == "job_submitted")[-1]["job_id"]
    groups = {
        "all": ALL_EVENTS_GROUP,
        "job": group_for("job", job_id),
        "submitted": group_for("job", submitted),
    }
    held = {name: _members(group) for name, group in groups.items()}

    for client in (live, compat, monitor):
        client.close()

    assert held == {"all": 2, "job": 1, "submitted": 1}
    left = wait_for(
        lambda: not any(_members(group) for group in groups.values()), what="the server leaving its groups"
    )
    assert left


def test_a_message_id_another_tenant_used_neither_blocks_nor_touches_its_job(live_stack, api_key):
    from accounts.models import ApiKey, Tenant

    stranger_key = ApiKey.issue("stranger", tenant=Tenant.objects.create(name="stranger"))[1]
    message_id = str(uuid.uuid4())
    mine = Client(f"{live_stack.ws_url}/client/emprops-1?token={api_key[1]}")
    theirs = Client(f"{live_stack.ws_url}/client/other-1?token={stranger_key}")
    for client in (mine, theirs):
        assert client.next()["type"] == "authenticated"
    mine.send(type="submit_job", message_id=message_id, job_type="simulation", payload={"who": "me"})
    assert mine.next()["job_id"] == message_id
    theirs.send(type="submit_job", message_id=message_id, job_type="simulation", payload={"who": "them"})
    answer = theirs.next()
    mine.close(), theirs.close()

    assert answer["type"] == "job_submitted" and answer["message_id"] == message_id, answer
    assert answer["job_id"] != message_id
    assert Job.objects.get(pk=message_id).payload == {"who": "me"}
    assert Job.objects.get(pk=answer["job_id"]).tenant.name == "stranger"
