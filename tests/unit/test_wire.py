"""The wire contract's edge: whatever bytes a worker puts on its lane become a typed message or a
refusal with a reason — never an exception, never an unbounded value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.envelopes import envelope
from wire import edge, fleet, names, reports

STARTED = {"job_id": "job-1", "attempt": 1, "lease": "lease-1"}


def refusal(raw: bytes, lane: str = names.CONTROL_LANE) -> str | None:
    decoded = edge.decode(raw, lane, "gpu0")
    assert decoded.sender == "gpu0" and (decoded.message is None) == (decoded.refusal is not None)
    return decoded.refusal


def test_an_honest_report_decodes_into_its_type():
    decoded = edge.decode(envelope(names.REPORT_STARTED_TASK, STARTED), names.CONTROL_LANE, "gpu0")
    assert decoded.message == reports.Started(job_id="job-1", attempt=1, lease="lease-1")


def test_json_nested_a_hundred_thousand_deep_is_refused_not_raised():
    deep = b"[" * 100_000 + b"]" * 100_000
    assert refusal(deep) == edge.MALFORMED
    assert refusal(b'{"body": ' + deep + b"}") == edge.MALFORMED
    assert refusal(envelope(names.REPORT_STARTED_TASK, None, raw_body=deep)) == edge.INVALID


def test_free_form_values_nested_deeper_than_the_bound_are_refused():
    result: Any = "bottom"
    for _ in range(100):
        result = [result]
    raw = envelope(names.REPORT_SUCCEEDED_TASK, {**STARTED, "result": result})
    assert refusal(raw) == edge.INVALID


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff not even JSON",
        b'{"properties": "not an envelope"}',
        json.dumps(
            {"body": "!!!", "headers": {"task": names.REPORT_STARTED_TASK}, "properties": {}}
        ).encode(),
    ],
)
def test_what_is_not_a_task_message_is_malformed(raw):
    assert refusal(raw) == edge.MALFORMED


@pytest.mark.parametrize(
    "kwargs",
    [
        {**STARTED, "attempt": "one"},  # wrong type
        {**STARTED, "job_id": "j" * 101},  # too long
        {**STARTED, "worker_id": "someone-else"},  # a field the message does not have
        {"job_id": "job-1", "attempt": 1},  # no lease
        {**STARTED, "running_for_ms": -5},
    ],
)
def test_fields_that_break_the_types_or_bounds_are_invalid(kwargs):
    assert refusal(envelope(names.REPORT_STARTED_TASK, kwargs)) == edge.INVALID


def test_positional_arguments_are_not_part_of_the_contract():
    assert refusal(envelope(names.REPORT_STARTED_TASK, STARTED, args=["x"])) == edge.INVALID


def test_a_task_of_no_lane_or_of_the_other_lane_is_an_unknown_kind():
    assert refusal(envelope("celery.ping", {})) == edge.UNKNOWN_KIND
    heartbeat = envelope(names.HEARTBEAT_TASK, {"instance_id": "i"})
    assert refusal(heartbeat, names.CONTROL_LANE) == edge.UNKNOWN_KIND
    assert refusal(heartbeat, names.FLEET_LANE) is None


def test_a_description_is_bounded_field_by_field():
    good = {"worker_id": "gpu0", "instance_id": "i", "machine_id": "m1"}
    assert refusal(envelope(names.REGISTER_WORKER_TASK, {"description": good}), names.FLEET_LANE) is None
    for bad in (
        {**good, "worker_id": "has space"},
        {**good, "customer_allowlist": "acme"},  # a string where a list belongs
        {**good, "job_types": ["t"] * 501},
        {**good, "slots": 0},
        {**good, "pool": "a'; DROP"},
    ):
        raw = envelope(names.REGISTER_WORKER_TASK, {"description": bad})
        assert refusal(raw, names.FLEET_LANE) == edge.INVALID, bad


def test_a_heartbeats_attempts_are_pairs_of_job_id_and_number():
    for seen in ([["job", 1]], []):
        raw = envelope(names.HEARTBEAT_TASK, {"instance_id": "i", "seen_attempts": seen})
        assert refusal(raw, names.FLEET_LANE) is None
    for seen in ([["job"]], [["job", "1"]], "job", [[{"deep": []}, 1]]):
        raw = envelope(names.HEARTBEAT_TASK, {"instance_id": "i", "seen_attempts": seen})
        assert refusal(raw, names.FLEET_LANE) == edge.INVALID


def test_the_facts_a_heartbeat_records_leave_its_description_out():
    beat = fleet.Heartbeat(
        instance_id="i",
        sent_at=5.0,
        description=fleet.Description(worker_id="w", instance_id="i", machine_id="m"),
    )
    assert "description" not in beat.facts() and beat.facts()["sent_at"] == 5.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    task=st.sampled_from([*edge.KINDS, "celery.ping", ""]),
    kwargs=json_values,
    lane=st.sampled_from(names.LANES),
)
def test_any_body_on_any_lane_decodes_or_is_refused(task, kwargs, lane):
    decoded = edge.decode(envelope(task, kwargs), lane, "gpu0")
    assert (decoded.message is None) != (decoded.refusal is None)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_bytes_at_all_decode_or_are_refused(raw):
    decoded = edge.decode(raw, names.CONTROL_LANE, "gpu0")
    assert decoded.refusal is not None
