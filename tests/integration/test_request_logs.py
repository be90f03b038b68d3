"""A request's log lines say which request and tenant they belong to, and never carry its key."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.test import Client

from wire import logs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLineFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_a_failed_requests_line_carries_its_correlation_id_and_tenant_but_not_its_key(api_key, json_lines):
    key, raw = api_key
    Client().get(f"/api/jobs/{uuid.uuid4()}", HTTP_X_API_KEY=raw, HTTP_X_CORRELATION_ID="req-42")

    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["level"] == "WARNING" and line["correlation_id"] == "req-42"
    assert line["tenant_id"] == str(key.tenant_id)
    assert raw not in json.dumps(json_lines())


def test_a_new_key_is_shown_once_and_never_logged(json_lines):
    from accounts.models import ApiKey, Role

    _, admin = ApiKey.issue("admin-for-logs", role=Role.ADMIN)
    created = Client().post(
        "/api/keys", {"name": "logged-key"}, content_type="application/json", HTTP_X_API_KEY=admin
    )

    assert created.status_code == 201, created.json()
    new_key = (
        created.json()["key"]["key"] if isinstance(created.json().get("key"), dict) else created.json()["key"]
    )
    everything = json.dumps(json_lines())
    assert new_key not in everything and admin not in everything
