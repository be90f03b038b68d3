"""`emprops/client.py` against the EmProps stand-in: typed errors, retries only where safe, the bearer
token in a header and never in a log line."""

from __future__ import annotations

import logging

import pytest

from emprops.client import EmpropsClient, EmpropsNotFound, EmpropsPermanent, EmpropsTransient


@pytest.fixture
def client(emprops_standin, settings) -> EmpropsClient:
    settings.EMPROPS_RETRIES = 3
    return EmpropsClient(emprops_standin.url, emprops_standin.api_key)


def test_idempotent_reads_are_retried_through_429_and_5xx(client, emprops_standin):
    emprops_standin.script("/jobs/w1", "429:0", "503")
    assert client.get("/jobs/w1") == {"data": {"id": "w1"}}
    assert [r.answered for r in emprops_standin.at("GET", "/jobs/w1")] == [429, 503, 200]


def test_posts_are_not_retried_by_the_client(client, emprops_standin):
    emprops_standin.script("/jobs/w1/complete", "503")
    with pytest.raises(EmpropsTransient) as raised:
        client.post("/jobs/w1/complete", {"status": "completed"}, idempotency_key="k1")
    assert raised.value.status == 503
    assert len(emprops_standin.at("POST", "/jobs/w1/complete")) == 1  # its caller owns the schedule


@pytest.mark.parametrize(
    ("answer", "error"), [("404", EmpropsNotFound), ("400", EmpropsPermanent), ("500", EmpropsTransient)]
)
def test_each_answer_is_a_typed_error(client, emprops_standin, answer, error, settings):
    settings.EMPROPS_RETRIES = 0
    emprops_standin.script("/jobs/w2/complete", answer)
    with pytest.raises(error):
        client.post("/jobs/w2/complete", {})


def test_no_answer_is_transient_and_a_wrong_key_is_a_refusal(emprops_standin, settings):
    settings.EMPROPS_RETRIES = 0
    emprops_standin.script("/jobs/w3/complete", "drop")
    with pytest.raises(EmpropsTransient):
        EmpropsClient(emprops_standin.url, emprops_standin.api_key).post("/jobs/w3/complete", {})
    with pytest.raises(EmpropsPermanent) as refused:
        EmpropsClient(emprops_standin.url, "wrong").post("/jobs/w3/complete", {})
    assert refused.value.status == 401


def test_the_key_is_never_logged(client, emprops_standin, caplog, settings):
    settings.EMPROPS_RETRIES = 0
    caplog.set_level(logging.DEBUG)
    emprops_standin.script("/jobs/w4/complete", "500", "drop")
    for _ in range(2):
        with pytest.raises(EmpropsTransient):
            client.post("/jobs/w4/complete", {})
    assert caplog.records and emprops_standin.api_key not in caplog.text


def test_an_answer_slower_than_the_read_timeout_is_transient(emprops_standin, settings):
    settings.EMPROPS_RETRIES, settings.EMPROPS_READ_TIMEOUT_SECONDS = 0, 0.3
    emprops_standin.script("/jobs/w5/complete", "slow:1")
    with pytest.raises(EmpropsTransient):
        EmpropsClient(emprops_standin.url, emprops_standin.api_key).post("/jobs/w5/complete", {})
