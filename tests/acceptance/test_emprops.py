"""EmProps is told of its workflows' endings exactly once, through the event log: real worker
processes, the real relay (`relay_events`, whose EmProps pump reads its own cursor), and a real
EmProps stand-in on a loopback port that checks the bearer token and answers as scripted."""

from __future__ import annotations

import time

import pytest

from emprops.models import EmpropsNotification
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api_key(db):
    """EmProps's own key (of the default tenant here, allowed to speak for EmProps); operators read the
    notifications."""
    from accounts.models import ApiKey, Role

    return ApiKey.issue("emprops-client", role=Role.OPERATOR, speaks_for_emprops=True)


def _workflow(api, source: str = "emprops", fail: bool = False) -> str:
    steps = [
        {
            "name": "generate",
            "type": "simulation",
            "payload": {"duration": 0.05, "result": {"image": "a.png"}},
        },
        {
            "name": "upscale",
            "type": "simulation",
            "payload": {"duration": 0.05, "fail_permanently": fail},
            "depends_on": ["generate"],
        },
    ]
    body = {"name": "collection-7", "source": source, "steps": steps, "metadata": {"collection_id": "col-7"}}
    created = api.post("/api/workflows", body, format="json")
    assert created.status_code == 201, created.content
    return created.json()["workflow_id"]


def _completions(standin, workflow_id: str):
    return standin.at("POST", f"/jobs/{workflow_id}/complete")


def _settle_then_count(standin, workflow_id: str, quiet_s: float = 1.5) -> int:
    """How many completions EmProps accepted, once nothing more arrived for `quiet_s`."""
    time.sleep(quiet_s)
    return len(standin.accepted("POST", f"/jobs/{workflow_id}/complete"))


def test_a_finished_emprops_workflow_is_notified_once_with_its_outputs_and_step_details(
    api, gpu_worker, emprops_standin, emprops_relay
):
    gpu_worker()
    workflow_id = _workflow(api)
    [sent] = wait_for(lambda: emprops_standin.accepted("POST", f"/jobs/{workflow_id}/complete"), timeout=30)

    body = sent.body
    shown = api.get(f"/api/workflows/{workflow_id}").json()["workflow"]
    assert (body["status"], body["workflow_id"], body["collection_id"]) == ("completed", workflow_id, "col-7")
    assert body["step_details"] == shown["steps"]  # the one shape, as the API shows it
    assert body["workflow_output"]["outputs"][0] == shown["steps"][0]["result"]
    assert sent.headers["idempotency-key"] == f"jobqueue-event-{body['event_id']}"
    assert _settle_then_count(emprops_standin, workflow_id) == 1
    notification = EmpropsNotification.objects.get(workflow__workflow_id=workflow_id)
    assert (notification.status, notification.attempt_count) == ("notified", 1)


def test_a_failed_workflow_tells_emprops_why_and_other_workflows_tell_it_nothing(
    api, gpu_worker, emprops_standin, emprops_relay
):
    gpu_worker()
    failed = _workflow(api, fail=True)
    ours_alone = _workflow(api, source="")
    [sent] = wait_for(lambda: emprops_standin.accepted("POST", f"/jobs/{failed}/complete"), timeout=30)
    assert sent.body["status"] == "failed" and sent.body["error"]["class"] == "permanent"
    wait_for(lambda: api.get(f"/api/workflows/{ours_alone}").json()["workflow"]["status"] == "completed")
    assert _settle_then_count(emprops_standin, ours_alone) == 0


def test_emprops_down_for_a_while_is_notified_once_after_it_returns(
    api, gpu_worker, emprops_standin, emprops_relay
):
    gpu_worker()
    emprops_standin.stop()  # connection refused
    workflow_id = _workflow(api)
    path = f"/jobs/{workflow_id}/complete"
    emprops_standin.script(path, "drop", "500", "429:0.2")
    wait_for(
        lambda: EmpropsNotification.objects.filter(
            workflow__workflow_id=workflow_id, attempt_count__gte=1
        ).exists(),
        timeout=30,
    )
    emprops_standin.start_again()

    wait_for(lambda: emprops_standin.accepted("POST", path), timeout=30)
    assert _settle_then_count(emprops_standin, workflow_id) == 1
    notification = EmpropsNotification.objects.get(workflow__workflow_id=workflow_id)
    assert notification.status == "notified" and notification.attempt_count >= 4  # refused, dropped, 500, 429


def test_a_notification_emprops_keeps_refusing_is_dead_lettered_and_can_be_redelivered(
    api, gpu_worker, emprops_standin, emprops_relay
):
    gpu_worker()
    workflow_id = _workflow(api)
    path = f"/jobs/{workflow_id}/complete"
    emprops_standin.script(path, "400")  # a refusal: sending it again as it is would not help
    dead = EmpropsNotification.objects.filter(workflow__workflow_id=workflow_id, status="dead_lettered")
    wait_for(dead.exists, timeout=30)
    assert api.get("/api/emprops/notifications/counts").json()["counts"]["dead_lettered"] == 1
    notification = dead.get()
    listed = api.get("/api/emprops/notifications?status=dead_lettered").json()["notifications"]
    assert [n["id"] for n in listed] == [notification.pk]

    redelivered = api.post(f"/api/emprops/notifications/{notification.pk}/redeliver")
    assert redelivered.status_code == 200
    # EmProps records the request before its answer reaches the pump: wait for what the pump made of it.
    notified = EmpropsNotification.objects.filter(pk=notification.pk, status="notified")
    wait_for(notified.exists, timeout=30)
    detail = api.get(f"/api/emprops/notifications/{notification.pk}").json()["notification"]
    assert detail["status"] == "notified" and [a["status_code"] for a in detail["attempts"]] == [400, 200]
    assert _settle_then_count(emprops_standin, workflow_id) == 1


def test_a_control_plane_restarted_between_completion_and_notification_notifies_once(
    api, gpu_worker, emprops_standin, emprops_relay
):
    emprops_relay.stop()
    gpu_worker()
    workflow_id = _workflow(api)
    wait_for(lambda: api.get(f"/api/workflows/{workflow_id}").json()["workflow"]["status"] == "completed")
    assert _settle_then_count(emprops_standin, workflow_id, quiet_s=0.5) == 0

    emprops_relay.start()
    wait_for(lambda: emprops_standin.accepted("POST", f"/jobs/{workflow_id}/complete"), timeout=30)
    emprops_relay.stop()
    emprops_relay.start()  # and once more: nothing is sent twice
    assert _settle_then_count(emprops_standin, workflow_id, quiet_s=2) == 1


def test_the_miniapp_attests_that_a_user_was_notified(api, gpu_worker):
    gpu_worker()
    workflow_id = _workflow(api, source="emprops")
    attested = api.post(
        "/api/user_notified",
        {"workflow_id": workflow_id, "user_id": "fid:42", "channel": "farcaster"},
        format="json",
    )
    assert attested.status_code == 201
    timeline = api.get(f"/api/events?workflow_id={workflow_id}&type=workflow_user_notified").json()["events"]
    assert [e["payload"] for e in timeline] == [{"user_id": "fid:42", "channel": "farcaster"}]
    assert api.get(f"/api/workflows/{workflow_id}").json()["workflow"]["user_notified_at"]
    unknown = api.post("/api/user_notified", {"workflow_id": "no-such-workflow"}, format="json")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "workflow_not_found")
