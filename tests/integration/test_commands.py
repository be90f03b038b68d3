"""Management commands that scripts drive."""

from __future__ import annotations

import io
import subprocess
import sys

import psutil
import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey
from devstack.embedded import free_port
from devstack.processes import stop_process
from tests.conftest import ROOT, _child_env, wait_for


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_once_and_stores_only_its_hash(settings):
    settings.USES_EMBEDDED_POSTGRES = False  # the test database is already running
    out = io.StringIO()

    call_command("create_api_key", "script-client", stdout=out)

    raw_key = out.getvalue().strip()
    stored = ApiKey.objects.get(name="script-client")
    assert raw_key.startswith("jq_")
    assert stored.key_hash == ApiKey.hash_key(raw_key)
    assert raw_key not in stored.key_hash
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_key", "script-client", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_an_operator_gives_a_revoked_worker_id_out_again_on_purpose(settings):
    import redis as redis_py

    from core.redis import redis_client
    from machines import credentials
    from machines.models import WorkerCredential
    from wire import names

    settings.USES_EMBEDDED_POSTGRES = False  # the test database is already running
    out = io.StringIO()
    call_command("create_worker_credential", "gpu-op-1", "--pool", "standard", stdout=out)
    with pytest.raises(CommandError, match="active credential"):
        call_command("create_worker_credential", "gpu-op-1", "--pool", "standard", stdout=io.StringIO())
    credentials.revoke(WorkerCredential.objects.get(pk="gpu-op-1"))

    again = io.StringIO()
    call_command("create_worker_credential", "gpu-op-1", "--pool", "standard", stdout=again)

    username, secret = again.getvalue().split()
    assert username == names.broker_username("gpu-op-1") and secret not in out.getvalue()
    host = redis_client().connection_pool.connection_kwargs
    worker = redis_py.Redis(host=host["host"], port=host["port"], username=username, password=secret)
    lane = names.lane_list(names.FLEET_LANE, "gpu-op-1")
    assert worker.lpush(lane, b"it may speak on its own lane") == 1
    redis_client().delete(lane)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("role", "server"), [("api", "granian"), ("live", "uvicorn")])
def test_serve_http_runs_the_configured_server_in_its_place(services, role, server):
    port = free_port()
    argv = [sys.executable, "manage.py", "serve_http", role, "--port", str(port)]
    process = subprocess.Popen(argv, cwd=ROOT, env=_child_env(services), stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _health(port) == 200, what=f"{role} to answer /health")
        assert server in " ".join(psutil.Process(process.pid).cmdline())  # exec'd, not a child
    finally:
        stop_process(process, timeout=10)


def _health(port: int) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
    except requests.RequestException:
        return None
