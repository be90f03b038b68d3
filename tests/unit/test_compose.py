"""docker/compose.yml: valid for Docker Compose itself (Debian's docker-compose validates it without a
daemon), every Celery queue the code uses has a consumer, and every long-running service a health
check."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from django.conf import settings

from tests.conftest import ROOT

DOCKER = ROOT / "docker"
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"  # scripts/test installs it
ONE_SHOT = {"migrate"}


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """The file as Docker Compose resolves it, with the example settings filled in."""
    folder = tmp_path_factory.mktemp("deploy") / "docker"
    shutil.copytree(DOCKER, folder)
    shutil.copy(folder / ".env.example", folder / ".env")
    shutil.copy(folder / "gpu-worker.env.example", folder / "gpu-worker.env")
    (folder / "metrics-token").write_text("token\n")
    env = {
        "PATH": os.environ["PATH"],
        "POSTGRES_PASSWORD": "p",
        "REDIS_PASSWORD": "r",
        "GRAFANA_ADMIN_PASSWORD": "g",
    }
    resolved = subprocess.run(
        [COMPOSE, "-f", "compose.yml", "config"],
        check=False,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


def _consumed(command: list[str]) -> set[str]:
    if "consume_lanes" in command:
        return set(command[command.index("consume_lanes") + 1 :])
    if "worker" in command and "-Q" in command:
        return set(command[command.index("-Q") + 1].split(","))
    return set()


def test_every_celery_queue_the_code_uses_has_a_consumer_service(compose):
    used = {
        settings.CELERY_TASK_DEFAULT_QUEUE,
        settings.WEBHOOK_QUEUE,
        *settings.CONTROL_PLANE_LANES,
        *(entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()),
    }
    consumed = {
        queue for service in compose["services"].values() for queue in _consumed(service.get("command", []))
    }

    assert used - consumed == set()
    # Each GPU worker consumes its own queue (worker.<id>); the compose runs them as `gpu-worker`.
    assert compose["services"]["gpu-worker"]["image"].startswith("jobqueue-gpu-worker")


def test_every_long_running_service_has_a_health_check(compose):
    unchecked = [
        name
        for name, service in compose["services"].items()
        if name not in ONE_SHOT and (not service.get("healthcheck") or service["healthcheck"].get("disable"))
    ]
    assert unchecked == []


def test_the_image_runs_only_after_the_migration_succeeded(compose):
    app_services = [
        name for name, s in compose["services"].items() if s.get("image", "").startswith("jobqueue:")
    ]
    waiting = [
        name
        for name in app_services
        if name not in ONE_SHOT
        if compose["services"][name]["depends_on"].get("migrate", {}).get("condition")
        == "service_completed_successfully"
    ]
    assert sorted(waiting) == sorted(set(app_services) - ONE_SHOT)
    assert "collectstatic" in " ".join(compose["services"]["migrate"]["command"])


def test_the_broker_is_durable_and_never_evicts(compose):
    redis = " ".join(compose["services"]["redis"]["entrypoint"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis and "requirepass" in redis


def test_operator_consoles_are_published_on_loopback_only(compose):
    for name in ("flower", "prometheus", "grafana"):
        for port in compose["services"][name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
