"""Every event type has a schema, and a payload that breaks it is refused before it is written."""

from __future__ import annotations

import pytest

from events.schemas import SCHEMAS, InvalidEvent, validate_event
from events.types import EventType


def test_every_event_type_has_a_schema_and_no_schema_lacks_a_type():
    assert set(SCHEMAS) == set(EventType.values)


def test_a_payload_missing_a_key_names_the_key():
    with pytest.raises(InvalidEvent, match=r"payload\.reason"):
        validate_event(EventType.JOB_QUEUED, {"status": "pending", "attempt": 1})


def test_a_boolean_is_not_an_integer_in_an_event():
    with pytest.raises(InvalidEvent, match="not a boolean"):
        validate_event(EventType.JOB_QUEUED, {"status": "pending", "attempt": True, "reason": "x"})


def test_an_unknown_event_type_is_refused():
    with pytest.raises(InvalidEvent, match="unknown event type"):
        validate_event("job_teleported", {})


def test_extra_keys_are_allowed_so_adding_one_is_compatible():
    validate_event(EventType.JOB_QUEUED, {"status": "pending", "attempt": 1, "reason": "x", "error": {}})
