"""Live push: the relay publishes committed events in order, and `/ws` clients get them (a real
WebSocket client against the real ASGI server and relay process)."""

from __future__ import annotations

import contextlib
import json
import uuid

import psycopg
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from events.models import Event, EventRelayCursor
from events.relay import group_for, relay_once
from jobqueue.cancellation import cancel_job
from jobqueue.models import Job
from tests.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)


class Client:
    """A WebSocket client that collects what the server sends."""

    def __init__(self, url: str) -> None:
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(connect(url, open_timeout=10))

    def send(self, **message) -> None:
        self.socket.send(json.dumps(message))

    def next(self, timeout: float = 10) -> dict:
        return json.loads(self.socket.recv(timeout=timeout))

    def until(self, predicate, timeout: float = 15) -> list[dict]:
        """Messages up to and including the first one matching `predicate`."""
        seen = []
        while True:
            message = self.next(timeout)
            seen.append(message)
            if predicate(message):
                return seen

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def ws(live_stack, api_key):
    clients = []

    def open_client(authenticated: bool = True) -> Client:
        url = f"{live_stack.ws_url}?api_key={api_key[1]}" if authenticated else live_stack.ws_url
        client = Client(url)
        clients.append(client)
        if authenticated:
            assert client.next()["type"] == "authenticated"
        return client

    yield open_client
    for client in clients:
        client.close()


# --- the relay, in-process -------------------------------------------------------------------------


def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _receive(channel: str) -> dict:
    return async_to_sync(get_channel_layer().receive)(channel)


def test_the_relay_publishes_a_jobs_events_to_its_group_in_order():
    relay_once()  # whatever earlier tests left
    job = make_job()
    channel = _listen(group_for("job", job.id))
    cancel_job(job.id)

    assert relay_once() >= 2

    types = [_receive(channel)["event"]["type"] for _ in range(2)]
    assert types == ["job_submitted", "job_cancelled"]


def test_the_relay_never_skips_an_event_that_commits_behind_its_cursor():
    relay_once()
    settings_dict = connection.settings_dict
    slow = psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=False,
    )
    try:
        slow.execute(
            "INSERT INTO jobqueue_event (type, version, created_at, correlation_id, payload, workflow_id) "
            "VALUES ('workflow_cancel_requested', 1, now(), '', '{\"reason\": \"slow\"}', 'slow-wf')"
        )  # open: its transaction started before the next event's
        slow_channel = _listen(group_for("workflow", "slow-wf"))
        job = make_job()  # commits first, with a later transaction id
        job_channel = _listen(group_for("job", job.id))

        relay_once()
        assert not _relayed(job)  # it committed, but behind the open transaction: not yet
        slow.commit()
        relay_once()
        assert _relayed(job)

        assert _receive(slow_channel)["event"]["payload"] == {"reason": "slow"}
        assert _receive(job_channel)["event"]["type"] == "job_submitted"
    finally:
        slow.close()


def _relayed(job) -> bool:
    """Whether the relay's cursor has passed the job's first event."""
    event = Event.objects.filter(job_id=job.id).order_by("id").first()
    cursor = EventRelayCursor.objects.get(name="live")
    return (cursor.last_txid, cursor.last_id) >= (event.txid, event.id)


# --- /ws over a real connection --------------------------------------------------------------------


def test_a_subscriber_gets_a_jobs_events_live_and_a_resume_replays_what_it_missed(ws, submit):
    client = ws()
    job_id = submit(payload={"duration": 0})
    client.send(type="subscribe_job", job_id=job_id)
    assert client.next() == {"type": "subscribed", "subscription": "job", "job_id": job_id}

    client.send(type="resume", last_event_id=0)  # it subscribed after the submit: catch up first
    replayed = client.until(lambda m: m["type"] == "resumed")
    cancel_job(job_id, "no longer needed")
    live = client.until(lambda m: m["type"] == "job_cancelled")

    assert [m["type"] for m in replayed] == ["job_submitted", "resumed"]
    assert replayed[0]["job_id"] == job_id and replayed[0]["data"]["payload"]["type"] == "simulation"
    assert [m["type"] for m in live] == ["job_cancelled"]  # the submitted event is not sent twice
    assert live[0]["data"]["payload"]["reason"] == "no longer needed"


def test_a_reconnecting_client_resumes_from_its_last_event_and_misses_nothing(ws):
    job = make_job()
    first = ws()
    first.send(type="subscribe_job", job_id=str(job.id))
    first.next()
    first.send(type="resume", last_event_id=0)
    last_seen = first.until(lambda m: m["type"] == "resumed")[-2]["data"]["id"]
    first.close()

    cancel_job(job.id)  # happens while the client is away
    again = ws()
    again.send(type="subscribe_job", job_id=str(job.id))
    again.next()
    again.send(type="resume", last_event_id=last_seen)

    missed = again.until(lambda m: m["type"] == "resumed")
    assert [m["type"] for m in missed] == ["job_cancelled", "resumed"]
    assert missed[-1]["replayed"] == 1


def test_a_monitor_subscribed_to_everything_sees_every_job(ws):
    client = ws()
    client.send(type="subscribe_all")
    assert client.next()["subscription"] == "all"

    jobs = [make_job(), make_job()]

    seen = set()
    client.until(lambda m: seen.add(m.get("job_id")) or seen >= {str(j.id) for j in jobs})


def test_bad_messages_get_a_clear_error_and_the_connection_stays_up(ws):
    client = ws()
    client.socket.send("not json")
    assert client.next()["code"] == "invalid_message"
    client.send(type="teleport")
    assert (client.next()["code"], "field") == ("unknown_message_type", "field")
    client.send(type="subscribe_job", job_id="not-a-uuid")
    assert client.next() == {
        "type": "error",
        "code": "invalid_message",
        "message": "job_id must be a UUID",
        "field": "job_id",
    }
    client.send(type="resume", last_event_id="yesterday")
    assert client.next()["field"] == "last_event_id"
    client.send(type="ping")
    assert client.next()["type"] == "pong"


@pytest.mark.parametrize("socket_path", ["", "/monitor/m-1", "/client/c-1"])
def test_every_socket_answers_deep_huge_and_unstorable_messages_with_an_error_and_stays_up(
    live_stack, api_key, socket_path, settings
):
    client = Client(f"{live_stack.ws_url}{socket_path}?api_key={api_key[1]}&token={api_key[1]}")
    try:
        assert client.next()["type"] == "authenticated"
        for raw, code in [
            ("[" * 10_000 + "]" * 10_000, "too_deep"),
            ('{"type": "ping", "note": "\\u0000"}', "null_character"),
            ('{"type": "ping", "note": "\\ud800"}', "invalid_unicode"),
            ("{" * 3, "invalid_message"),
            ("x" * (settings.LIVE_MAX_MESSAGE_BYTES + 1), "message_too_large"),
        ]:
            client.socket.send(raw)
            assert client.until(lambda m: m["type"] == "error")[-1]["code"] == code, raw[:40]
        client.send(type="ping")
        assert client.until(lambda m: m["type"] == "pong")
    finally:
        client.close()
    assert Event.objects.count() == 0


def test_a_client_must_authenticate_before_subscribing(ws, api_key):
    client = ws(authenticated=False)
    client.send(type="subscribe_all")
    assert client.next()["code"] == "unauthenticated"
    client.send(type="auth", api_key=api_key[1])
    assert client.next() == {"type": "authenticated", "client": api_key[0].name}

    intruder = ws(authenticated=False)
    intruder.send(type="auth", api_key="jq_wrong")
    assert intruder.next()["code"] == "invalid_api_key"
    with pytest.raises(ConnectionClosed):  # closed by the server (4401)
        intruder.next(timeout=5)
    assert Event.objects.count() == 0  # nothing happened for lack of a key


# --- the replaced system's client socket -----------------------------------------------------------


@pytest.fixture
def emp_client(live_stack, api_key):
    clients = []

    def open_client() -> Client:
        client = Client(f"{live_stack.ws_url}/client/emprops-1?token={api_key[1]}")
        clients.append(client)
        assert client.next()["type"] == "authenticated"
        return client

    yield open_client
    for client in clients:
        client.close()


def test_a_job_submitted_over_the_client_socket_reports_progress_and_completes_once(emp_client, gpu_worker):
    gpu_worker()
    client = emp_client()
    step_id = str(uuid.uuid4())  # EmProps' step id: the job's id, as in the replaced system
    message = {
        "type": "submit_job",
        "message_id": step_id,
        "job_type": "simulation",
        "payload": {"duration": 1.2, "steps": 3, "result": "cat.png"},
    }
    client.send(**message)
    ack = client.next()
    assert (ack["type"], ack["message_id"], ack["job_id"]) == ("job_submitted", step_id, step_id)

    messages = client.until(lambda m: m["type"] == "complete_job", timeout=30)

    assert any(m["type"] == "update_job_progress" and 0 < m["progress"] < 100 for m in messages)
    completion = messages[-1]
    assert completion["job_id"] == ack["job_id"]
    assert completion["result"]["status"] == "success" and completion["result"]["data"]["output"] == "cat.png"
    client.send(**message)  # sent again after a reconnect: the message_id makes it the same job
    assert client.next()["job_id"] == ack["job_id"]
    client.send(type="ping")
    assert [m["type"] for m in client.until(lambda m: m["type"] == "pong")] == [
        "pong"
    ]  # no second completion


def test_a_failure_is_a_complete_job_with_status_failed(emp_client, gpu_worker):
    gpu_worker()
    client = emp_client()
    client.send(
        type="submit_job",
        message_id=str(uuid.uuid4()),
        job_type="simulation",
        payload={"fail_permanently": True},
    )
    client.next()

    completion = client.until(lambda m: m["type"] == "complete_job", timeout=30)[-1]

    assert completion["result"]["status"] == "failed"
    assert completion["result"]["error"]["code"] == "SIMULATED_PERMANENT"


def test_subscribing_to_a_job_that_finished_while_away_delivers_its_completion(emp_client):
    job = make_job()
    cancel_job(job.id)
    client = emp_client()

    client.send(type="subscribe_progress", job_id=str(job.id), message_id="m-3")

    assert client.next()["type"] == "subscribed"
    completion = client.next()
    assert (completion["type"], completion["result"]) == ("complete_job", {"status": "cancelled"})


def test_a_bad_submission_over_the_client_socket_is_an_error_naming_its_message(emp_client):
    client = emp_client()

    message_id = str(uuid.uuid4())
    client.send(type="submit_job", message_id=message_id, job_type="simulation", colour="red")

    error = client.next()
    assert (error["type"], error["code"], error["message_id"]) == ("error", "validation_error", message_id)
    assert "colour" in error["error"]
    assert not Job.objects.exists()


def test_a_message_id_that_cannot_be_a_job_id_is_refused_clearly(emp_client):
    taken = make_job()
    client = emp_client()

    client.send(type="submit_job", message_id="emp-msg-5", job_type="simulation")
    malformed = client.next()
    client.send(type="submit_job", message_id=str(taken.id), job_type="simulation")
    used = client.next()

    assert (malformed["type"], malformed["code"]) == ("error", "invalid_message_id")
    assert (used["type"], used["code"], used["message_id"]) == ("error", "job_id_taken", str(taken.id))
    assert Job.objects.count() == 1


# --- the replaced system's monitor socket ----------------------------------------------------------


def test_a_monitor_gets_the_full_state_and_then_every_event(live_stack, operator_key, gpu_worker):
    worker = gpu_worker()
    done, later = make_job(type="upscale"), make_job(type="upscale")  # no worker here runs upscales
    cancel_job(done.id)
    monitor = Client(f"{live_stack.ws_url}/monitor/monitor-id-1?token={operator_key[1]}")
    try:
        assert monitor.next()["type"] == "authenticated"
        monitor.send(type="subscribe", topics=["workers", "jobs"])
        assert monitor.next()["topics"] == ["workers", "jobs"]
        monitor.send(type="request_full_state", finishedJobsPagination={"page": 1, "pageSize": 5})
        snapshot = monitor.until(lambda m: m["type"] == "full_state_snapshot")[-1]

        data = snapshot["data"]
        assert snapshot["monitor_id"] == "monitor-id-1"
        assert [w["id"] for w in data["workers"]] == [worker.worker_id]
        assert data["workers"][0]["live"] is True
        assert data["machines"] == [{"id": "test-machine", "workers": [worker.worker_id], "live": True}]
        assert data["system_stats"]["total_jobs"] == 2 and data["system_stats"]["active_workers"] == 1
        assert data["pagination"]["finishedJobs"]["hasNextPage"] is False
        assert data["queues"] == [
            {
                "type": "upscale",
                "pool": None,
                "capabilities": [],
                "depth": 1,
                "oldest_queued_at": data["queues"][0]["oldest_queued_at"],
            }
        ]
        assert len(data["throughput"]) == 30 and data["dead_letters"] == [] and data["workflows"] == []
        monitor.send(type="request_full_state", finishedJobsPagination={"page": 0})
        assert monitor.until(lambda m: m["type"] == "error")[-1]["field"] == "finishedJobsPagination"

        cancel_job(later.id)  # live, whatever the worker did with it meanwhile
        monitor.until(
            lambda m: (
                m.get("job_id") == str(later.id) and m["type"] in ("job_cancel_requested", "job_cancelled")
            )
        )
    finally:
        monitor.close()


def test_the_monitor_page_is_served_with_its_script(client):
    from django.contrib.staticfiles import finders

    page = client.get("/monitor")

    assert page.status_code == 200
    assert b"live/monitor.js" in page.content and b'id="key-form"' in page.content
    assert finders.find("live/monitor.js") and finders.find("live/monitor.css")


def test_a_socket_gets_only_its_tenants_events_live_and_on_resume(live_stack, api_key):
    from accounts.models import ApiKey, Tenant

    stranger_key = ApiKey.issue("stranger", tenant=Tenant.objects.create(name="stranger"))[1]
    mine, theirs = (
        Client(f"{live_stack.ws_url}?api_key={api_key[1]}"),
        Client(f"{live_stack.ws_url}?api_key={stranger_key}"),
    )
    try:
        for client in (mine, theirs):
            assert client.next()["type"] == "authenticated"
            client.send(type="subscribe_all")
            assert client.next()["type"] == "subscribed"
        job = make_job()  # the default tenant's, as the fixture's key is

        mine.until(lambda m: m.get("job_id") == str(job.id))  # published to every subscriber by now
        theirs.send(type="ping")
        assert theirs.next()["type"] == "pong"  # nothing of the other tenant's came first
        theirs.send(type="resume", last_event_id=0)
        assert theirs.next() == {"type": "resumed", "replayed": 0}
    finally:
        mine.close()
        theirs.close()


def test_a_strangers_monitor_sees_neither_another_tenants_jobs_nor_the_fleet(live_stack, gpu_worker):
    from accounts.models import ApiKey, Tenant

    gpu_worker()
    job = make_job(type="upscale")  # the default tenant's; nobody here runs upscales
    stranger_key = ApiKey.issue("stranger", tenant=Tenant.objects.create(name="stranger"))[1]
    monitor = Client(f"{live_stack.ws_url}/monitor/m-2?token={stranger_key}")
    try:
        assert monitor.next()["type"] == "authenticated"
        monitor.send(type="subscribe", topics=["jobs"])
        monitor.until(lambda m: m["type"] == "subscribed")
        monitor.send(type="request_full_state", finishedJobsPagination={"page": 1, "pageSize": 5})
        data = monitor.until(lambda m: m["type"] == "full_state_snapshot")[-1]["data"]

        assert data["system_stats"]["total_jobs"] == 0 and data["jobs"]["pending"] == []
        assert data["queues"] == [] and data["workers"] == [] and data["machines"] == []
        cancel_job(job.id)
        relay_once()  # what the relay process would publish by now, published here for certain
        monitor.send(type="ping")
        before_pong = monitor.until(lambda m: m["type"] == "pong")
        assert [m for m in before_pong if m.get("job_id")] == []
    finally:
        monitor.close()


def test_a_revoked_keys_open_socket_is_closed_within_seconds(live_stack):
    from accounts.models import ApiKey

    key, raw = ApiKey.issue("short-lived")
    client = Client(f"{live_stack.ws_url}?api_key={raw}")
    try:
        assert client.next()["type"] == "authenticated"
        client.send(type="subscribe_all")
        assert client.next()["type"] == "subscribed"

        key.revoke()

        assert client.next(timeout=5) == {
            "type": "error",
            "code": "api_key_revoked",
            "message": "the API key was revoked or has expired",
        }
        with pytest.raises(ConnectionClosed) as closed:
            client.next(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        client.close()


def test_an_expiring_keys_open_socket_is_closed_when_it_expires(live_stack):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ApiKey

    raw = ApiKey.issue("expiring", expires_at=timezone.now() + timedelta(seconds=2))[1]
    client = Client(f"{live_stack.ws_url}?api_key={raw}")
    try:
        assert client.next()["type"] == "authenticated"
        assert client.next(timeout=6)["code"] == "api_key_revoked"
        with pytest.raises(ConnectionClosed):
            client.next(timeout=5)
    finally:
        client.close()


def test_a_strangers_client_socket_can_neither_follow_nor_cancel_another_tenants_job(live_stack):
    from accounts.models import ApiKey, Tenant

    job, finished = make_job(type="upscale"), make_job(type="upscale")  # the default tenant's
    cancel_job(finished.id)
    stranger_key = ApiKey.issue("stranger", tenant=Tenant.objects.create(name="stranger"))[1]
    client = Client(f"{live_stack.ws_url}/client/stranger-1?token={stranger_key}")
    try:
        assert client.next()["type"] == "authenticated"
        for job_id in (job.id, finished.id):  # a finished job's result would come first: it must not
            client.send(type="subscribe_progress", job_id=str(job_id), message_id="m1")
            assert client.next()["code"] == "not_found"
        client.send(type="cancel_job", job_id=str(job.id), message_id="m2")
        assert client.next()["code"] == "not_found"
        job.refresh_from_db()
        assert job.cancel_requested_at is None and job.status == "pending"
        cancel_job(job.id)  # by its owner: the events go to its own tenant only
        relay_once()
        client.send(type="ping")
        assert [m for m in client.until(lambda m: m["type"] == "pong") if m.get("job_id")] == []
    finally:
        client.close()
