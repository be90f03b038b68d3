"""Statement and lock timeouts by kind of process (`core.db.limit_sessions`): a request stuck behind a
lock answers 503 within the API's lock timeout instead of holding its connection; migrations and
one-off commands get no limit."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest
import requests

from tests.conftest import ROOT, _child_env, _running_api_server, _test_database_url
from tests.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_request_stuck_behind_a_lock_answers_503_within_the_apis_lock_timeout(services, api_key):
    job = make_job()
    env = {**_child_env(services), "API_LOCK_TIMEOUT_MS": "500"}
    with (
        _running_api_server(env) as api_url,
        psycopg.connect(_test_database_url(services)) as holder,
    ):
        holder.execute("SELECT 1 FROM jobqueue_job WHERE id = %s FOR UPDATE", [job.pk])  # held until exit
        began = time.monotonic()
        answer = requests.post(
            f"{api_url}/api/jobs/{job.pk}/cancel", headers={"x-api-key": api_key[1]}, timeout=30
        )
        waited = time.monotonic() - began
        holder.rollback()
    assert answer.status_code == 503 and answer.headers.get("Retry-After")
    assert waited < 5  # the lock timeout, not the holder, ended the wait


def test_one_off_commands_and_migrations_run_without_limits(services):
    show = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('SHOW statement_timeout'); a = c.fetchone()[0]; "
        "c.execute('SHOW lock_timeout'); print(a, c.fetchone()[0])"
    )
    env = {**_child_env(services), "DATABASE_URL": _test_database_url(services)}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", show],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == ["0", "0"]


def test_long_running_processes_get_the_limits_of_their_kind(settings):
    from django.db import connection

    from core.db import limit_sessions

    settings.DATABASE_TIMEOUTS_MS = {"api": (1234, 567)}
    options = connection.settings_dict.get("OPTIONS", {}).copy()
    try:
        limit_sessions("api")
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            statement = cursor.fetchone()[0]
            cursor.execute("SHOW lock_timeout")
            lock = cursor.fetchone()[0]
    finally:
        connection.settings_dict["OPTIONS"] = options
        connection.close()
    assert (statement, lock) == ("1234ms", "567ms")
