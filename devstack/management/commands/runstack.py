"""`manage.py runstack`: the whole system on one machine, stopped cleanly with Ctrl-C.

Starts embedded Postgres and Redis unless DATABASE_URL / REDIS_URL are set, migrates, then runs the
front (nginx on the public port), the REST API (WSGI), the live server (ASGI, the WebSockets), the
control plane's lane consumers (reports and fleet in batches, `consume_lanes`; a
Celery worker for beat's sweeps), one GPU worker, Celery beat, the event relay (with the webhook
pump), the webhook delivery worker and Flower as child processes.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import ApiKey, Role
from core.celery_app import lane_argv
from core.http_servers import server_named
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServiceError, free_port
from devstack.front import FrontUnavailable, front_argv
from devstack.processes import stop_processes
from gpu_worker import credentials as gpu_credentials
from machines import credentials
from machines.models import WorkerCredential
from webhooks.worker import delivery_worker_argv
from wire import names

SHUTDOWN_GRACE_S = 20
DEV_KEY_FILE = "dev-api-key"
RESTART_DELAY_S = 1.0
FLOWER_LOGIN_FILE = "flower-login"


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    # Restarted when it exits (a GPU worker exits to shed a job stuck past its hard time limit).
    restart: bool = False
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's environment


class Command(BaseCommand):
    help = "Run the front, API, live server, control plane, GPU worker, beat and Flower (and embedded Postgres/Redis)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555")))
        parser.add_argument("--no-gpu-worker", action="store_true", help="run only the control plane")

    def handle(
        self, *args: Any, port: int, host: str, flower_port: int, no_gpu_worker: bool, **options: Any
    ) -> None:
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        try:
            servers = self._start_servers()
        except EmbeddedServiceError as exc:
            raise CommandError(str(exc)) from exc
        children: list[Child] = []
        try:
            self._say("migrating the database")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            api_key = self._development_key()
            try:
                children = self._children(host, port, flower_port, no_gpu_worker)
            except FrontUnavailable as exc:
                raise CommandError(str(exc)) from exc
            env = {
                **os.environ,
                "DATABASE_URL": settings.DATABASE_URL,
                "REDIS_URL": settings.REDIS_URL,
                "JOBQUEUE_DATA_DIR": str(settings.DATA_DIR),
                "PYTHONUNBUFFERED": "1",
            }
            for child in children:
                child.process = subprocess.Popen(child.argv, env={**env, **child.env}, start_new_session=True)
            self._banner(host, port, flower_port, api_key)
            while not stopping:
                dead = next((c for c in children if c.process and c.process.poll() is not None), None)
                if dead is not None and dead.restart:
                    self._say(f"{dead.name} exited with code {_exit_code(dead)}; restarting it")
                    time.sleep(RESTART_DELAY_S)
                    dead.process = subprocess.Popen(
                        dead.argv, env={**env, **dead.env}, start_new_session=True
                    )
                elif dead is not None:
                    self.stderr.write(f"{dead.name} exited with code {_exit_code(dead)}; stopping everything")
                    break
                time.sleep(0.5)
        finally:
            self._say("stopping")
            _stop_children(children)
            for server in reversed(servers):
                server.stop()
            self._say("stopped")

    def _start_servers(self) -> list[EmbeddedPostgres | EmbeddedRedis]:
        servers: list[EmbeddedPostgres | EmbeddedRedis] = []
        if settings.USES_EMBEDDED_POSTGRES:
            postgres = EmbeddedPostgres(settings.DATA_DIR, settings.EMBEDDED_PG_PORT)
            self._say(
                f"starting embedded Postgres on 127.0.0.1:{postgres.port} (data in {settings.DATA_DIR})"
            )
            postgres.start()
            servers.append(postgres)
        if settings.USES_EMBEDDED_REDIS:
            server = EmbeddedRedis(
                settings.DATA_DIR, settings.EMBEDDED_REDIS_PORT, maxmemory=settings.EMBEDDED_REDIS_MAXMEMORY
            )
            self._say(f"starting embedded Redis on 127.0.0.1:{server.port}")
            try:
                server.start()
            except Exception:
                for started in servers:
                    started.stop()
                raise
            servers.append(server)
        return servers

    def _development_key(self) -> str:
        """Reuse the key saved in the data folder while it is valid; otherwise issue a new one."""
        key_file = settings.DATA_DIR / DEV_KEY_FILE
        if key_file.exists():
            raw_key = key_file.read_text().strip()
            if ApiKey.objects.filter(key_hash=ApiKey.hash_key(raw_key), is_active=True).exists():
                return raw_key
        name = f"development-{int(time.time())}"
        _, raw_key = ApiKey.issue(name, role=Role.ADMIN)  # an admin of the default tenant
        key_file.write_text(raw_key + "\n")
        key_file.chmod(0o600)
        return raw_key

    def _children(self, host: str, port: int, flower_port: int, no_gpu_worker: bool) -> list[Child]:
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "settings.celery"]
        api_port, live_port = free_port(), free_port()
        front = front_argv(
            settings.DATA_DIR / "front", f"{host}:{port}", f"127.0.0.1:{api_port}", f"127.0.0.1:{live_port}"
        )
        api = server_named(settings.API_SERVER, "wsgi")
        live = server_named(settings.LIVE_SERVER, "asgi")
        children = [
            Child("front", front),
            Child("api", api.argv("127.0.0.1", api_port, settings.API_PROCESSES)),
            Child("live", live.argv("127.0.0.1", live_port)),
            *(
                Child(f"{lane}-{n}", lane_argv(lane, f"{lane}-{n}", "INFO", "-E"))
                for lane, processes in settings.CONTROL_PLANE_LANES.items()
                for n in range(1, processes + 1)
            ),
            Child("beat", [*celery, "beat", "-s", settings.CELERY_BEAT_SCHEDULE_FILENAME, "-l", "INFO"]),
            Child("relay", [python, str(settings.BASE_DIR / "manage.py"), "relay_events"]),
            Child("webhook-worker", delivery_worker_argv("webhooks")),
            # Flower reads FLOWER_BASIC_AUTH from its environment (kept off the command line, which
            # every local user can read).
            Child(
                "flower",
                [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"],
                env={"FLOWER_BASIC_AUTH": self._flower_login()},
            ),
        ]
        if not no_gpu_worker:
            worker_id = os.environ.get("WORKER_ID", "local-gpu0")
            children.append(
                Child(
                    "gpu-worker",
                    [
                        python,
                        "-m",
                        "gpu_worker",
                        "--worker-id",
                        worker_id,
                        "--gpu-memory-gb",
                        os.environ.get("WORKER_GPU_MEMORY_GB", "24"),
                    ],
                    restart=True,
                    # Its own broker user, in its environment (`ps` shows argv to every user).
                    env={"BROKER_URL": _local_worker_broker_url(worker_id)},
                )
            )
        return children

    def _flower_login(self) -> str:
        """FLOWER_BASIC_AUTH (user:password), or a development login saved in the data folder."""
        if settings.FLOWER_BASIC_AUTH:
            return settings.FLOWER_BASIC_AUTH
        login_file = settings.DATA_DIR / FLOWER_LOGIN_FILE
        if not login_file.exists():
            login_file.write_text(f"admin:{secrets.token_urlsafe(18)}\n")
            login_file.chmod(0o600)
        return login_file.read_text().strip()

    def _banner(self, host: str, port: int, flower_port: int, api_key: str) -> None:
        base = f"http://{host}:{port}"
        lines = [
            "",
            "GPU job queue is running. Ctrl-C stops everything.",
            f"  API          {base}/api/jobs",
            f"  API docs     {base}/api/docs",
            f"  Health       {base}/health",
            f"  Monitor      {base}/monitor   (paste the API key below)",
            f"  Live push    ws://{host}:{port}/ws",
            f"  Admin        {base}/admin/   (create a login: .venv/bin/python manage.py createsuperuser)",
            f"  Flower       http://127.0.0.1:{flower_port}/   (login: {self._flower_login_hint()})",
            f"  Database     {_redact(settings.DATABASE_URL)}",
            f"  Broker       {_redact(settings.REDIS_URL)}",
            f"  API key      {api_key}",
            "",
            f"  curl -s -X POST {base}/api/jobs -H 'x-api-key: {api_key}' -H 'content-type: application/json' \\",
            '       -d \'{"type": "simulation", "payload": {"duration": 2}}\'',
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _flower_login_hint(self) -> str:
        if settings.FLOWER_BASIC_AUTH:
            return "FLOWER_BASIC_AUTH"
        return f"user:password in {settings.DATA_DIR / FLOWER_LOGIN_FILE}"

    def _say(self, message: str) -> None:
        self.stdout.write(f"[runstack] {message}")
        self.stdout.flush()


def _exit_code(child: Child) -> int | None:
    return child.process.returncode if child.process else None


def _stop_children(children: list[Child]) -> None:
    # GPU and control workers first (they finish or hand back their current job), then the rest.
    ordered = sorted(children, key=lambda c: 0 if "worker" in c.name else 1)
    stop_processes([c.process for c in ordered if c.process is not None], timeout=SHUTDOWN_GRACE_S)


def _local_worker_broker_url(worker_id: str) -> str:
    """The development GPU worker joins as any other would, with a credential of its own (made anew
    on each start: the previous one is revoked first)."""
    held = WorkerCredential.objects.filter(pk=worker_id, revoked_at=None).first()
    if held is not None:
        with transaction.atomic():
            credentials.revoke(held)
    _, secret = credentials.issue(worker_id, pool=os.environ.get("WORKER_POOL", "standard"))
    given = gpu_credentials.Credential(worker_id, names.broker_username(worker_id), secret, "", [])
    return given.broker_url(settings.REDIS_URL)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
