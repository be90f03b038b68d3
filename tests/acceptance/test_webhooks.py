"""Webhooks: signed Standard Webhooks deliveries from the event log to a real receiver on loopback,
retried on a (shortened) schedule, logged, dead-lettered, redeliverable, and never to a private
address unless allowed. The pump and the delivery worker are real processes."""

from __future__ import annotations

import itertools
import socket
import time

import pytest
from django.utils import timezone

from events.models import Event, EventRelayCursor
from jobqueue.cancellation import cancel_job
from jobqueue.models import Job
from tests.conftest import wait_for
from tests.factories import make_job
from webhooks import send as sending
from webhooks.fanout import CURSOR_NAME, fan_out_once
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.signing import signature_header
from webhooks.ssrf import BlockedTarget, guarded_session

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULE_SLACK_S = 1.0  # the pump polls every 50 ms; a worker picks a message up within a few


@pytest.fixture
def endpoint(api, webhook_receiver, settings):
    """Create an endpoint through the API; the receiver checks its signatures with the secret."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    def create(path: str = "/hook", **fields) -> dict:
        response = api.post("/api/webhooks", {"url": webhook_receiver.url(path), **fields}, format="json")
        assert response.status_code == 201, response.json()
        webhook_receiver.expect_secret(path, response.json()["secret"])
        return response.json()["webhook"]

    return create


def _cancelled_job() -> Job:
    """A job_cancelled event, without any worker."""
    job = make_job(type="upscale")
    cancel_job(job.id, reason="test")
    return job


def _fan_out_committed_events() -> None:
    """`fan_out_once` until it reads the events committed so far: while a transaction begun before
    they committed is still running in any process (a sweep's, the relay's), they stay hidden."""
    wait_for(lambda: fan_out_once() > 0, what="the committed events to be fanned out")


def _deliveries_of(endpoint_id: str) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(endpoint_id=endpoint_id).order_by("id"))


# --- delivery ---------------------------------------------------------------------------------------


def test_a_completed_job_reaches_a_subscribed_endpoint_signed_with_everything_a_receiver_needs(
    api, endpoint, webhook_receiver, webhook_service, gpu_worker
):
    webhook_service()
    hook = endpoint(event_types=["job_completed"])
    worker = gpu_worker()
    submitted = api.post(
        "/api/jobs",
        {"type": "simulation", "payload": {"duration": 0, "result": "cat.png"}},
        format="json",
        HTTP_X_CORRELATION_ID="corr-123",
    )
    job_id = submitted.json()["job_id"]

    [received] = wait_for(lambda: webhook_receiver.at("/hook"), what="the webhook")
    time.sleep(0.5)  # nothing else should follow: only job_completed was subscribed
    assert len(webhook_receiver.at("/hook")) == 1
    assert received.verified is True
    body = received.json
    assert body["event_type"] == body["type"] == "job_completed"
    assert body["job_id"] == job_id and body["status"] == "completed"
    assert body["result"]["output"] == "cat.png"  # the connector's own result
    assert body["correlation_id"] == "corr-123" and body["worker_id"] == worker.worker_id
    assert body["machine_id"] == "test-machine" and body["job_type"] == "simulation"
    assert body["created_at"] and body["completed_at"] and body["timestamp"]
    event = Event.objects.get(pk=body["event_id"])
    assert event.type == "job_completed" and received.headers["webhook-id"] == f"msg_{event.id}"

    listed = api.get(f"/api/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert [(d["event_type"], d["status"], d["attempt_count"]) for d in listed] == [
        ("job_completed", "succeeded", 1)
    ]
    detail = api.get(f"/api/webhooks/deliveries/{listed[0]['id']}").json()["delivery"]
    assert detail["attempts"][0]["status_code"] == 200 and detail["attempts"][0]["latency_ms"] > 0
    assert detail["payload"] == body
    stats = api.get(f"/api/webhooks/{hook['id']}/stats").json()["stats"]
    assert stats["deliveries_total"] == stats["deliveries_succeeded"] == 1 and stats["last_success_at"]


def test_failures_are_retried_on_the_schedule_with_the_same_id_and_body(
    endpoint, webhook_receiver, webhook_service
):
    webhook_service(WEBHOOK_RETRY_SCHEDULE_SECONDS="1,2")
    hook = endpoint(event_types=["job_cancelled"])
    webhook_receiver.script("/hook", "500", "503")
    _cancelled_job()

    attempts = wait_for(lambda: len(webhook_receiver.at("/hook")) == 3 and webhook_receiver.at("/hook"))
    assert [a.answered for a in attempts] == ["500", "503", "200"]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1 and len({a.body for a in attempts}) == 1
    assert all(a.verified for a in attempts)  # re-signed each time, with a fresh timestamp
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert 1.0 <= gaps[0] < 1.0 + SCHEDULE_SLACK_S and 2.0 <= gaps[1] < 2.0 + SCHEDULE_SLACK_S, gaps

    [delivery] = _deliveries_of(hook["id"])
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)
    assert [(a.number, a.status_code, a.succeeded) for a in delivery.attempts.all()] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]


def test_a_429_waits_at_least_its_retry_after(endpoint, webhook_receiver, webhook_service):
    webhook_service(WEBHOOK_RETRY_SCHEDULE_SECONDS="0.2")
    endpoint(event_types=["job_cancelled"])
    webhook_receiver.script("/hook", "429:2")
    _cancelled_job()

    first, second = wait_for(lambda: len(webhook_receiver.at("/hook")) == 2 and webhook_receiver.at("/hook"))
    assert 2.0 <= second.at - first.at < 2.0 + SCHEDULE_SLACK_S


def test_a_receiver_hanging_past_the_timeout_is_an_attempt_that_failed_and_is_retried(
    endpoint, webhook_receiver, webhook_service
):
    webhook_service(WEBHOOK_TIMEOUT_SECONDS="1", WEBHOOK_RETRY_SCHEDULE_SECONDS="0.5")
    hook = endpoint(event_types=["job_cancelled"])
    webhook_receiver.script("/hook", "hang:3")
    _cancelled_job()

    wait_for(lambda: len(webhook_receiver.at("/hook")) == 2, what="the retry")
    [delivery] = _deliveries_of(hook["id"])
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)
    first, second = delivery.attempts.all()
    assert first.status_code is None and "timed out after 1 s" in first.error and first.latency_ms >= 1000
    assert second.status_code == 200


def test_a_final_4xx_is_not_retried_and_410_disables_the_endpoint(
    api, endpoint, webhook_receiver, webhook_service
):
    webhook_service()
    rejecting = endpoint("/rejecting", event_types=["job_cancelled"])
    gone = endpoint("/gone", event_types=["job_cancelled"])
    webhook_receiver.script("/rejecting", "400")
    webhook_receiver.script("/gone", "410")
    _cancelled_job()

    wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DEAD_LETTERED).count() == 2,
        what="both dead-lettered",
    )
    assert [d.dead_letter_reason for d in _deliveries_of(rejecting["id"])] == ["rejected"]
    assert [d.dead_letter_reason for d in _deliveries_of(gone["id"])] == ["gone"]
    time.sleep(1.5)  # past the first retry delay: nothing was tried again
    assert len(webhook_receiver.at("/rejecting")) == len(webhook_receiver.at("/gone")) == 1
    assert WebhookEndpoint.objects.get(pk=rejecting["id"]).enabled is True
    disabled = api.get(f"/api/webhooks/{gone['id']}").json()["webhook"]
    assert disabled["enabled"] is False and "410" in disabled["disabled_reason"]
    assert (
        Event.objects.filter(type="webhook_endpoint_disabled", payload__endpoint_id=gone["id"]).count() == 1
    )

    _cancelled_job()  # a disabled endpoint gets nothing new
    wait_for(lambda: len(webhook_receiver.at("/rejecting")) == 2, what="the second message")
    assert len(webhook_receiver.at("/gone")) == 1


def test_an_exhausted_delivery_is_dead_lettered_and_can_be_redelivered_alone_or_in_bulk(
    api, endpoint, webhook_receiver, webhook_service
):
    webhook_service(WEBHOOK_RETRY_SCHEDULE_SECONDS="0.3,0.3")
    hook = endpoint(event_types=["job_cancelled"])
    webhook_receiver.script("/hook", *["500"] * 9)
    since = timezone.now()
    for _ in range(3):
        _cancelled_job()

    wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DEAD_LETTERED).count() == 3,
        what="three exhausted deliveries",
    )
    first, *others = _deliveries_of(hook["id"])
    assert first.dead_letter_reason == "exhausted" and first.attempt_count == 3
    failed = api.get(f"/api/webhooks/{hook['id']}/deliveries?status=dead_lettered").json()
    assert failed["pagination"]["total"] == 3

    again = api.post(f"/api/webhooks/deliveries/{first.pk}/redeliver")
    assert again.status_code == 200 and again.json()["delivery"]["status"] == "pending"
    wait_for(lambda: WebhookDelivery.objects.get(pk=first.pk).status == DeliveryStatus.SUCCEEDED)
    first.refresh_from_db()
    assert first.attempt_count == 4 and first.redelivery_count == 1
    ids = {
        r.headers["webhook-id"] for r in webhook_receiver.at("/hook") if r.json["event_id"] == first.event_id
    }
    assert ids == {first.message_id}  # the same message, as receivers deduplicate on it

    bulk = api.post("/api/webhooks/deliveries/redeliver", {"since": since.isoformat()}, format="json").json()
    assert (bulk["matched"], bulk["redelivered"], bulk["remaining"]) == (2, 2, 0)
    wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 3,
        what="the bulk redelivery",
    )
    webhook_receiver.script("/hook", "hang:2")  # keeps the next redelivery pending for a while
    assert api.post(f"/api/webhooks/deliveries/{others[0].pk}/redeliver").status_code == 200
    refused = api.post(f"/api/webhooks/deliveries/{others[0].pk}/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "delivery_pending"


def test_an_endpoint_failing_for_the_configured_period_is_disabled_and_says_so(
    endpoint, webhook_receiver, webhook_service
):
    webhook_service(WEBHOOK_RETRY_SCHEDULE_SECONDS="0.4,0.4,0.4,0.4,0.4", WEBHOOK_DISABLE_AFTER_SECONDS="1")
    hook = endpoint(event_types=["job_cancelled"])
    webhook_receiver.script("/hook", *["500"] * 20)
    _cancelled_job()

    wait_for(
        lambda: not WebhookEndpoint.objects.get(pk=hook["id"]).enabled, what="the endpoint to be disabled"
    )
    endpoint_row = WebhookEndpoint.objects.get(pk=hook["id"])
    assert endpoint_row.disabled_reason.startswith("every delivery failed since")
    event = Event.objects.get(type="webhook_endpoint_disabled")
    assert event.payload["endpoint_id"] == hook["id"]
    tried = len(webhook_receiver.at("/hook"))
    assert 3 <= tried <= 5  # about 1 s of 0.4 s retries, then no more
    time.sleep(1.0)
    assert len(webhook_receiver.at("/hook")) == tried
    [delivery] = _deliveries_of(hook["id"])
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).dead_letter_reason == "endpoint_disabled")


def test_a_workflows_own_webhook_url_gets_its_end_with_step_details_signed_by_the_owners_secret(
    api, webhook_receiver, webhook_service, gpu_worker
):
    webhook_service()
    gpu_worker()
    secret = api.post("/api/webhooks/default-secret/rotate", {"overlap_seconds": 0}, format="json").json()[
        "secret"
    ]
    webhook_receiver.expect_secret("/workflow", secret)
    created = api.post(
        "/api/workflows",
        {
            "name": "two steps",
            "webhook_url": webhook_receiver.url("/workflow"),
            "steps": [
                {"type": "simulation", "name": "generate", "payload": {"duration": 0, "result": "a.png"}},
                {
                    "type": "simulation",
                    "name": "upscale",
                    "payload": {"duration": 0},
                    "depends_on": ["generate"],
                },
            ],
        },
        format="json",
    ).json()

    [received] = wait_for(lambda: webhook_receiver.at("/workflow"), what="the workflow webhook")
    body = received.json
    assert received.verified is True
    assert body["event_type"] == "workflow_completed" and body["workflow_id"] == created["workflow_id"]
    assert (body["status"], body["total_steps"], body["success_count"], body["failed_count"]) == (
        "completed",
        2,
        2,
        0,
    )
    assert [s["name"] for s in body["step_details"]] == ["generate", "upscale"]
    shape = api.get(f"/api/workflows/{created['workflow_id']}").json()
    assert body["step_details"] == shape["workflow"]["steps"]  # the one shape, as the API shows it


def _test_message_outcome(api, hook: dict) -> dict:
    """Queue a test message (the request never waits on the receiver) and wait for how it went."""
    began = time.monotonic()
    queued = api.post(f"/api/webhooks/{hook['id']}/test")
    assert queued.status_code == 202 and time.monotonic() - began < 2
    delivery_id = queued.json()["delivery_id"]

    def finished() -> dict | None:
        delivery = api.get(f"/api/webhooks/deliveries/{delivery_id}").json()["delivery"]
        return delivery if delivery["status"] != "pending" else None

    return wait_for(finished, timeout=30, what="the test message's outcome")


def test_a_test_message_is_queued_sent_once_and_reports_how_it_went(
    api, endpoint, webhook_receiver, webhook_service
):
    webhook_service()
    hook = endpoint()
    ok = _test_message_outcome(api, hook)
    assert ok["status"] == "succeeded" and ok["attempts"][0]["status_code"] == 200
    [received] = webhook_receiver.at("/hook")
    assert received.json["type"] == "webhook.test" and received.verified is True

    webhook_receiver.script("/hook", "500", "500")
    failed = _test_message_outcome(api, hook)
    assert failed["status"] == "dead_lettered" and [a["status_code"] for a in failed["attempts"]] == [500]
    assert api.get(f"/api/webhooks/{hook['id']}/stats").json()["stats"]["deliveries_total"] == 0


def test_a_test_message_to_a_slow_receiver_holds_no_request(api, endpoint, webhook_receiver, webhook_service):
    webhook_service()
    webhook_receiver.script("/slow-test", *["slow:3"] * 5)
    hook = endpoint("/slow-test")
    began = time.monotonic()
    for _ in range(5):
        assert api.post(f"/api/webhooks/{hook['id']}/test").status_code == 202
    assert time.monotonic() - began < 3  # five of them did not wait 15 s for the receiver


def test_a_slow_receiver_never_delays_jobs(api, endpoint, webhook_receiver, webhook_service, gpu_worker):
    """500+ messages to a receiver taking 0.5 s each (2 delivery threads: 4 a second at best)."""
    webhook_service(concurrency=2)
    webhook_receiver.script("/slow", *["slow:0.5"] * 2000)
    endpoint("/slow")  # every event: three per job at least (submitted, assigned, completed)
    gpu_worker()
    job_ids = [
        api.post("/api/jobs", {"type": "simulation", "payload": {"duration": 0}}, format="json").json()[
            "job_id"
        ]
        for _ in range(170)
    ]

    wait_for(
        lambda: Job.objects.filter(pk__in=job_ids, status="completed").count() == len(job_ids),
        timeout=90,
        what="every job to complete",
    )
    delivered_when_jobs_were_done = WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()
    wait_for(
        lambda: WebhookDelivery.objects.count() >= 500,
        what="500 messages for the receiver",
    )

    assert delivered_when_jobs_were_done < 100, delivered_when_jobs_were_done
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() > 350


# --- idempotency and signatures ---------------------------------------------------------------------


def test_one_event_relayed_twice_makes_one_delivery(endpoint):
    hook = endpoint(event_types=["job_cancelled"])
    _cancelled_job()
    _fan_out_committed_events()
    EventRelayCursor.objects.filter(name=CURSOR_NAME).update(last_txid=0, last_id=0)  # as after a crash
    _fan_out_committed_events()

    assert len(_deliveries_of(hook["id"])) == 1


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(api, endpoint, webhook_receiver):
    from standardwebhooks import Webhook

    hook = endpoint()
    old_secret = webhook_receiver._secrets["/hook"]
    rotated = api.post(f"/api/webhooks/{hook['id']}/rotate-secret", {"overlap_seconds": 3600}, format="json")
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret and rotated.json()["previous_secret_valid_until"]

    row = WebhookEndpoint.objects.get(pk=hook["id"])
    now = timezone.now()
    body, timestamp = b'{"a":1}', int(time.time())
    header = signature_header(row.signing_secrets(now), "msg_1", timestamp, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(timestamp), "webhook-signature": header}
    for secret in (old_secret, new_secret):
        Webhook(secret).verify(body, headers)
    later = now + timezone.timedelta(seconds=3601)
    assert len(row.signing_secrets(later)) == 1


# --- where webhooks may go --------------------------------------------------------------------------


@pytest.fixture
def resolving(monkeypatch):
    """Make chosen host names resolve to chosen addresses (no DNS server needed)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://internal.example/hook",  # resolves to a private address
        "http://[::ffff:192.168.0.1]/hook",
    ],
)
def test_private_and_metadata_targets_are_refused_when_the_allow_list_is_off(api, settings, resolving, url):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolving["internal.example"] = "10.9.8.7"

    response = api.post("/api/webhooks", {"url": url}, format="json")

    assert response.status_code == 400, response.json()
    assert (
        response.json()["error"]["code"] == "blocked_address" and response.json()["error"]["field"] == "url"
    )
    assert not WebhookEndpoint.objects.exists()


def test_the_address_is_checked_again_at_send_time(api, settings, resolving, webhook_receiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolving["hooks.example"] = "93.184.215.14"  # public when registered
    created = api.post("/api/webhooks", {"url": "http://hooks.example/hook"}, format="json")
    assert created.status_code == 201
    resolving["hooks.example"] = "10.0.0.7"  # then it points inside

    result = sending.send("http://hooks.example/hook", "msg_1", "{}", ["whsec_" + "A" * 44], {})

    assert result.blocked and "10.0.0.7" in result.error and result.status_code is None


def test_a_connection_that_lands_on_a_blocked_address_is_cut_before_anything_is_sent(
    settings, webhook_receiver
):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(BlockedTarget):
        guarded_session().post(webhook_receiver.url("/hook"), data=b"{}", timeout=2)
    assert webhook_receiver.received == []


def test_other_schemes_and_credentials_in_the_url_are_refused(api):
    for url, code in [
        ("ftp://example.com/x", "unsupported_scheme"),
        ("https://u:p@example.com/x", "credentials_in_url"),
    ]:
        response = api.post("/api/webhooks", {"url": url}, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.json()


# --- the API ----------------------------------------------------------------------------------------


def test_unknown_event_types_and_reserved_headers_are_a_400_that_changes_nothing(
    api, settings, webhook_receiver
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    url = webhook_receiver.url("/hook")
    unknown = api.post(
        "/api/webhooks", {"url": url, "event_types": ["job_completed", "job_finished"]}, format="json"
    )
    reserved = api.post("/api/webhooks", {"url": url, "headers": {"Webhook-Signature": "x"}}, format="json")
    bad_filter = api.post("/api/webhooks", {"url": url, "filters": {"colours": ["red"]}}, format="json")

    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "event_types"
    assert unknown.json()["error"]["details"]["fields"]["event_types"][0]["code"] == "unknown_event_type"
    assert "job_finished" in unknown.json()["error"]["message"]
    assert reserved.status_code == 400 and reserved.json()["error"]["field"] == "headers"
    assert bad_filter.status_code == 400 and bad_filter.json()["error"]["field"] == "filters.colours"
    assert not WebhookEndpoint.objects.exists()


def test_secrets_and_header_values_never_appear_after_creation(api, endpoint):
    created = api.post(
        "/api/webhooks",
        {"url": "https://93.184.215.14/hook", "headers": {"Authorization": "Bearer s3cr3t-token"}},
        format="json",
    )
    secret = created.json()["secret"]
    endpoint_id = created.json()["webhook"]["id"]
    assert secret.startswith("whsec_")

    for path in ("/api/webhooks", f"/api/webhooks/{endpoint_id}", f"/api/webhooks/{endpoint_id}/stats"):
        content = api.get(path).content.decode()
        assert secret not in content and "s3cr3t-token" not in content, path
    assert secret not in WebhookEndpoint.objects.get(pk=endpoint_id).secret_encrypted  # encrypted at rest
    assert api.get(f"/api/webhooks/{endpoint_id}").json()["webhook"]["headers"] == ["Authorization"]


def test_one_keys_endpoints_are_invisible_to_another(api, endpoint, api_client_for_new_key):
    hook = endpoint()
    other = api_client_for_new_key()

    assert other.get(f"/api/webhooks/{hook['id']}").status_code == 404
    assert other.get("/api/webhooks").json()["webhooks"] == []
    assert other.delete(f"/api/webhooks/{hook['id']}").status_code == 404


def test_filters_narrow_what_an_endpoint_receives(endpoint):
    only_upscales = endpoint("/upscales", event_types=["job_cancelled"], filters={"job_types": ["upscale"]})
    only_renders = endpoint("/renders", event_types=["job_cancelled"], filters={"job_types": ["render"]})
    _cancelled_job()  # an upscale
    _fan_out_committed_events()

    assert len(_deliveries_of(only_upscales["id"])) == 1
    assert _deliveries_of(only_renders["id"]) == []


def test_a_receiver_of_the_replaced_system_gets_its_event_names_envelope_and_signature(
    api, endpoint, webhook_receiver, webhook_service, gpu_worker
):
    import hashlib
    import hmac

    webhook_service()
    response = api.post(
        "/api/webhooks",
        {"url": webhook_receiver.url("/emp"), "format": "emp", "event_types": ["complete_job"]},
        format="json",
    )
    assert response.status_code == 201 and response.json()["webhook"]["event_types"] == ["job_completed"]
    hook, secret = response.json()["webhook"], response.json()["secret"]
    gpu_worker()
    job_id = api.post(
        "/api/jobs", {"type": "simulation", "payload": {"result": "cat.png"}}, format="json"
    ).json()["job_id"]

    [received] = wait_for(lambda: webhook_receiver.at("/emp"), timeout=30, what="the legacy webhook")
    body = received.json
    assert (body["event_type"], body["webhook_id"], body["data"]["job_id"]) == (
        "complete_job",
        hook["id"],
        job_id,
    )
    assert body["data"]["result"]["output"] == "cat.png" and body["data"]["completed_at"]
    assert received.headers["x-webhook-event"] == "complete_job"
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-webhook-signature"] == f"sha256={expected}"
    assert received.headers["webhook-signature"]  # the Standard Webhooks headers come too
