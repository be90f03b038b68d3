"""`manage.py runstack` (the README's run command) from an empty data folder, over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from websockets.sync.client import connect

from devstack.embedded import free_port, port_is_open
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow


def _start_stack(data_dir, ports) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        JOBQUEUE_DATA_DIR=str(data_dir),
        JOBQUEUE_EMBEDDED_PG_PORT=str(ports["pg"]),
        JOBQUEUE_EMBEDDED_REDIS_PORT=str(ports["redis"]),
        PORT=str(ports["api"]),
        FLOWER_PORT=str(ports["flower"]),
        WORKER_ID="stack-test-gpu0",
        WORKER_HARD_TIMEOUT_GRACE_SECONDS="0.5",
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",  # the test's receiver
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "runstack"],
        cwd=ROOT,
        env=env,
        stdout=open(data_dir / "stack.log", "wb"),
        stderr=subprocess.STDOUT,
    )


def _healthy(base: str, data_dir) -> bool:
    """Ready, and its GPU worker live (as its admin key, which the stack writes, sees the fleet)."""
    key_file = data_dir / "dev-api-key"
    try:
        if not requests.get(f"{base}/health", timeout=2).json().get("ready") or not key_file.exists():
            return False
        headers = {"x-api-key": key_file.read_text().strip()}
        workers = requests.get(f"{base}/api/workers", headers=headers, timeout=2).json()["workers"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    return [w["status"] != "offline" for w in workers] == [True]


def _status(job_url: str, headers: dict) -> str:
    return requests.get(job_url, headers=headers, timeout=5).json()["job"]["status"]


def _next_event_of(socket, job_id: str, event_type: str) -> dict:
    """The first `event_type` message about `job_id` on a socket subscribed to every event."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
        if message["type"] == event_type and message.get("data", {}).get("job_id") == job_id:
            return message
    raise AssertionError(f"no {event_type} for {job_id} over the front's WebSocket")


def _stop(stack: subprocess.Popen) -> int:
    stack.send_signal(signal.SIGINT)
    return stack.wait(60)


def test_the_run_command_serves_the_api_runs_jobs_and_stops_cleanly(tmp_path, webhook_receiver):
    ports = {name: free_port() for name in ("pg", "redis", "api", "flower")}
    base = f"http://127.0.0.1:{ports['api']}"
    stack = _start_stack(tmp_path, ports)
    try:
        wait_for(
            lambda: stack.poll() is not None or _healthy(base, tmp_path),
            timeout=120,
            interval=0.5,
            what="the stack",
        )
        assert stack.poll() is None, (tmp_path / "stack.log").read_text()[-3000:]
        key = (tmp_path / "dev-api-key").read_text().strip()
        headers = {"x-api-key": key}
        hook = requests.post(
            f"{base}/api/webhooks",
            json={"url": webhook_receiver.url("/hook"), "event_types": ["job_completed"]},
            headers=headers,
            timeout=5,
        )
        webhook_receiver.expect_secret("/hook", hook.json()["secret"])
        # The front carries the REST API (WSGI) and the WebSockets (ASGI) on the one public port.
        with connect(f"ws://127.0.0.1:{ports['api']}/ws?api_key={key}", open_timeout=10) as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "authenticated"
            socket.send(json.dumps({"type": "subscribe_all"}))
            assert json.loads(socket.recv(timeout=10))["type"] == "subscribed"
            submitted = requests.post(
                f"{base}/api/jobs",
                json={"type": "simulation", "payload": {"duration": 0.2}},
                headers=headers,
                timeout=5,
            )
            assert submitted.status_code == 201
            job_id = submitted.json()["job_id"]
            assert _next_event_of(socket, job_id, "job_completed")["data"]["job_id"] == job_id
        job_url = f"{base}/api/jobs/{job_id}"
        assert _status(job_url, headers) == "completed"
        access_log = (tmp_path / "front" / "access.log").read_text()
        assert "GET /ws HTTP/1.1" in access_log and key not in access_log  # the socket's query is not logged
        [message] = wait_for(lambda: webhook_receiver.at("/hook"), what="the job_completed webhook")
        assert message.verified and message.json["job_id"] == submitted.json()["job_id"]

        # A job deaf to its timeout costs its worker a restart, and the stack restarts it.
        stuck = {
            "type": "simulation",
            "payload": {"stuck_seconds": 30},
            "timeout_seconds": 1,
            "max_retries": 0,
        }
        stuck_id = requests.post(f"{base}/api/jobs", json=stuck, headers=headers, timeout=5).json()["job_id"]
        wait_for(lambda: _status(f"{base}/api/jobs/{stuck_id}", headers) == "failed", timeout=30)
        after = requests.post(f"{base}/api/jobs", json={"type": "simulation"}, headers=headers, timeout=5)
        after_url = f"{base}/api/jobs/{after.json()['job_id']}"
        wait_for(lambda: _status(after_url, headers) == "completed", timeout=60, what="the restarted worker")
        assert "gpu-worker exited with code 75; restarting it" in (tmp_path / "stack.log").read_text()
        flower = f"http://127.0.0.1:{ports['flower']}/"
        assert requests.get(flower, timeout=5).status_code == 401  # Flower asks for a login
        user, password = (tmp_path / "flower-login").read_text().strip().split(":", 1)
        assert requests.get(flower, auth=(user, password), timeout=5).status_code == 200
    finally:
        code = _stop(stack)
    assert code == 0, (tmp_path / "stack.log").read_text()[-3000:]
    for port in ports.values():
        assert not port_is_open(port), f"port {port} still open after Ctrl-C"

    # A second run reuses the data: same key, same job.
    stack = _start_stack(tmp_path, ports)
    try:
        wait_for(
            lambda: stack.poll() is not None or _healthy(base, tmp_path),
            timeout=120,
            interval=0.5,
            what="the restart",
        )
        assert (tmp_path / "dev-api-key").read_text().strip() == key
        assert requests.get(job_url, headers=headers, timeout=5).json()["job"]["status"] == "completed"
    finally:
        assert _stop(stack) == 0
        time.sleep(0.2)
