"""A database built before the renovation and before tenants upgrades in place: every row written
then is found, with its relations, through the models' new homes (the tables never moved), owned by
the default tenant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.conftest import ROOT, Services

SCRIPT = ROOT / "tests" / "integration" / "upgrade_database.py"


@pytest.fixture
def empty_database(services: Services):
    parts = urlsplit(services.database_url)
    name = f"upgrade_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _run(phase: str, database_url: str, services: Services) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": services.redis_url,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT), phase],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,  # the assertion below shows its stderr
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_database_from_before_the_renovation_keeps_every_row(empty_database, services):
    _run("old", empty_database, services)
    found = json.loads(_run("new", empty_database, services).strip().splitlines()[-1])
    assert found == {
        "job_key": "emprops",
        "executions": 1,
        "open_dead_letters": 1,
        "events": ["job_failed"],
        "cursor": [7, 1],
        "events_consumable": 1,
        "schedule_key": "emprops",
        "workflow_key": "emprops",
        "workflow_steps": 1,
        "endpoint_key": "emprops",
        "endpoint_headers": [True, {"X-Team": "ops"}],
        "delivery_key": "emprops",
        "attempts": 1,
        "default_secret": [["default", "z"]],
        "key_jobs": 1,
        "content_types": ["accounts.apikey", "events.event", "events.eventrelaycursor"],
        "new_event_ok": True,
        "tenants": {
            "key": ["default", "admin"],
            "job": "default",
            "schedule": "default",
            "workflow": "default",
            "endpoint": "default",
            "delivery": "default",
        },
    }
