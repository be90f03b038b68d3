"""Fixtures: real Postgres and Redis, a real control worker, and real GPU-worker processes.

With DATABASE_URL and REDIS_URL set, those servers are used; otherwise embedded ones are started on
free loopback ports for this test session (never the development stack's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core.http_servers import server_named
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from devstack.processes import stop_process, stop_processes

if TYPE_CHECKING:
    from tests.emprops_standin import EmpropsStandIn
    from tests.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = ROOT / ".pytest-data"
PROCESS_START_TIMEOUT_S = 30.0
TEST_STOP_TIMEOUT_S = 15.0


def wait_for(
    condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll until `condition()` is truthy; fail the test with `what` if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")


def run_in_threads(*targets: Callable[[], object]) -> tuple[list[object], list[Exception]]:
    """Run each target at once in its own thread (each with its own database connection).

    Returns what the targets returned and what they raised, for the test to assert on."""
    from django.db import connection

    results: list[object] = []
    errors: list[Exception] = []

    def run(target: Callable[[], object]) -> None:
        try:
            results.append(target())
        except Exception as exc:  # noqa: BLE001  (handed to the test)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@dataclass
class Services:
    database_url: str  # the server; the test database name is filled in once it exists
    redis_url: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    # Under pytest-xdist (scripts/test runs the integration tier on both cores) each worker process
    # has servers of its own, in a folder of its own.
    data_dir = TEST_DATA_DIR / os.environ.get("PYTEST_XDIST_WORKER", "")
    data_dir.mkdir(parents=True, exist_ok=True)
    started = []
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not database_url:
        pg = EmbeddedPostgres(data_dir, free_port())
        database_url = pg.start()
        started.append(pg)
    if not redis_url:
        redis_server = EmbeddedRedis(data_dir, free_port(), appendonly=False)
        redis_url = redis_server.start()
        started.append(redis_server)
    yield Services(database_url, redis_url)
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(services: Services) -> None:
    """Point Django, Celery and our Redis client at the session's servers before the test DB is made."""
    from urllib.parse import urlsplit

    from core.celery_app import app
    from core.redis import redis_client

    parts = urlsplit(services.database_url)
    settings.DATABASES["default"].update(
        HOST=parts.hostname, PORT=str(parts.port), USER=parts.username or "", PASSWORD=parts.password or ""
    )
    settings.REDIS_URL = settings.CELERY_BROKER_URL = services.redis_url
    app.conf.broker_url = services.redis_url
    redis_client.cache_clear()
    _point_channel_layer_at(services.redis_url)


def _point_channel_layer_at(url: str) -> None:
    from channels.layers import channel_layers

    from settings.base import channel_layer_url

    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [channel_layer_url(url)]
    channel_layers.backends = {}  # built again from the settings on next use


def _test_database_url(services: Services) -> str:
    from django.db import connection

    parts = services.database_url.rsplit("/", 1)[0]
    return f"{parts}/{connection.settings_dict['NAME']}"


def _child_env(services: Services) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _test_database_url(services),
        "REDIS_URL": services.redis_url,
        "DJANGO_SETTINGS_MODULE": "settings.base",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        "RETRY_BACKOFF_BASE_SECONDS": "0",  # no beat runs in tests to release backed-off retries
        "JOBQUEUE_DATA_DIR": str(TEST_DATA_DIR),  # collected static files, never the run command's
    }


@contextlib.contextmanager
def _running_control_worker(env: dict[str, str], name: str) -> Iterator[subprocess.Popen]:
    """The control plane's consumer of GPU workers' messages, as deployed: one `consume_lanes`
    process applying the report and fleet lanes in batches, and the sweeps queue's Celery worker,
    which makes the offers of work the fleet lane asks for (`dispatch.offers`), with their output in
    `.pytest-data/<name>.log`. Yields the lane consumer. (Beat's sweeps run in the tests' own process:
    no beat sends them.)"""
    from core.celery_app import lane_consumer_argv, worker_argv

    argvs = [
        lane_consumer_argv(settings.BATCHED_LANES),
        worker_argv(settings.SWEEPS_QUEUE, f"{name}-sweeps", 1, "WARNING", "--without-heartbeat"),
    ]
    with open(TEST_DATA_DIR / f"{name}.log", "ab") as log:
        lanes, sweeps = (
            subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT) for argv in argvs
        )
        try:
            yield lanes
        finally:
            stop_processes([lanes, sweeps], timeout=TEST_STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def control_worker(services: Services, django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen]:
    """The trusted Celery worker that applies GPU workers' reports to Postgres."""
    with _running_control_worker(_child_env(services), "control-worker") as process:
        yield process


@dataclass
class RunningGpuWorker:
    worker_id: str
    process: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.process, timeout=TEST_STOP_TIMEOUT_S)


def spawn_gpu_worker(
    env: dict[str, str],
    broker_url: str,
    *,
    worker_id: str,
    pool: str = "standard",
    capabilities: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    gpu_memory_gb: float = 24,
    slots: int = 1,
    extra_flags: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Start `python -m gpu_worker`, with its output in `.pytest-data/<worker_id>.log`."""
    flags = {
        "--worker-id": worker_id,
        "--machine-id": "test-machine",
        "--pool": pool,
        "--capabilities": ",".join(capabilities),
        "--models": ",".join(models),
        "--gpu-memory-gb": str(gpu_memory_gb),
        "--slots": str(slots),
        "--heartbeat-seconds": "1",
        # At teardown a worker still running a long job hands it back after this, not after 30 s.
        "--shutdown-grace-seconds": "2",
        "--log-level": "WARNING",
    }
    argv = [
        sys.executable,
        "-m",
        "gpu_worker",
        *(part for flag in flags.items() for part in flag),
        *extra_flags,
    ]
    with open(TEST_DATA_DIR / f"{worker_id}.log", "ab") as log:
        return subprocess.Popen(
            argv, env={**env, "BROKER_URL": broker_url}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )


_issued_secrets: dict[str, str] = {}  # worker id -> its credential's secret, for workers started again


def worker_broker_url(worker_id: str, broker_url: str, pool: str = "standard") -> str:
    """`broker_url` as the worker's own broker user: its credential (in the test database, and its
    user on that broker), made as an operator would (`manage.py create_worker_credential`), or the
    one it already holds when it is started again."""
    import redis

    from gpu_worker.credentials import Credential
    from machines import broker_users, credentials
    from machines.models import WorkerCredential
    from wire.names import broker_username

    held = WorkerCredential.objects.filter(pk=worker_id, revoked_at=None).first()
    secret = _issued_secrets.get(worker_id)
    if held is None or secret is None or credentials.digest(secret) != held.secret_hash or held.pool != pool:
        if held is not None:
            WorkerCredential.objects.filter(pk=worker_id).delete()
        _, secret = credentials.issue(worker_id, pool)
        _issued_secrets[worker_id] = secret
    broker_users.apply(worker_id, credentials.digest(secret), redis.Redis.from_url(broker_url))
    return Credential(worker_id, broker_username(worker_id), secret, pool, []).broker_url(broker_url)


@pytest.fixture
def gpu_worker(
    services: Services, control_worker, transactional_db
) -> Iterator[Callable[..., RunningGpuWorker]]:
    """Start real `python -m gpu_worker` processes; returns once each has registered."""
    from machines.models import Worker

    started: list[RunningGpuWorker] = []

    def start(
        *,
        worker_id: str | None = None,
        broker_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        **options,
    ) -> RunningGpuWorker:
        worker_id = worker_id or f"test-{uuid.uuid4().hex[:8]}"
        previous_instances = list(Worker.objects.filter(pk=worker_id).values_list("instance_id", flat=True))
        broker_url = broker_url or services.redis_url
        process = spawn_gpu_worker(
            {**_child_env(services), **(extra_env or {})},
            worker_broker_url(worker_id, broker_url, options.get("pool", "standard")),
            worker_id=worker_id,
            **options,
        )
        running = RunningGpuWorker(worker_id, process)
        started.append(running)
        registered = Worker.objects.filter(pk=worker_id).exclude(instance_id__in=previous_instances)
        wait_for(
            lambda: process.poll() is not None or registered.exists(),
            timeout=PROCESS_START_TIMEOUT_S,
            what=f"worker {worker_id} to register",
        )
        assert process.poll() is None, (TEST_DATA_DIR / f"{worker_id}.log").read_text()[-3000:]
        return running

    yield start
    # All at once: each takes most of a second to shut down, mostly waiting.
    stop_processes([running.process for running in started], timeout=TEST_STOP_TIMEOUT_S)


@pytest.fixture(autouse=True)
def immediate_retries(settings) -> None:
    """Retries go straight back to pending unless a test asks for backoff (no beat runs in tests)."""
    settings.RETRY_BACKOFF_BASE_SECONDS = 0


@pytest.fixture
def api_key(db):
    """A client key of the default tenant (the one work submitted without a key belongs to)."""
    from accounts.models import ApiKey

    return ApiKey.issue(f"tests-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def operator_key(db):
    """An operator key of the default tenant: it also sees the fleet (the monitor's workers) and every
    tenant's work."""
    from accounts.models import ApiKey, Role

    return ApiKey.issue(f"operator-{uuid.uuid4().hex[:8]}", role=Role.OPERATOR)


@pytest.fixture
def api_client_for_new_key(db) -> Callable[[], APIClient]:
    """API clients, each authenticated with a client key of a tenant of its own."""
    from accounts.models import ApiKey

    def make() -> APIClient:
        from accounts.models import Tenant

        name = f"other-{uuid.uuid4().hex[:8]}"
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=ApiKey.issue(name, tenant=Tenant.objects.create(name=name))[1])
        return client

    return make


@pytest.fixture
def api(api_key) -> APIClient:
    """An API client authenticated with a fresh key."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key[1])
    return client


@pytest.fixture
def submit(api: APIClient) -> Callable[..., str]:
    """Submit a job through the API and return its id."""

    def _submit(**body) -> str:
        body.setdefault("type", "simulation")
        response = api.post("/api/jobs", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["job_id"]

    return _submit


@pytest.fixture
def job_status():
    from jobqueue.models import Job

    def _status(job_id: str) -> str:
        return Job.objects.values_list("status", flat=True).get(pk=job_id)

    return _status


@pytest.fixture
def wait_for_status(job_status) -> Callable[..., None]:
    def _wait(job_id: str, status: str | set[str], timeout: float = 20.0) -> None:
        wanted = {status} if isinstance(status, str) else status
        wait_for(lambda: job_status(job_id) in wanted, timeout=timeout, what=f"job {job_id} to be {wanted}")

    return _wait


@dataclass
class PrivateBroker:
    """A Redis of one test's own, which the test may stop and restart; in-process clients use it."""

    server: EmbeddedRedis
    url: str

    def restart_empty(self) -> None:
        self.server.start()


def _point_clients_at(url: str) -> None:
    from core.celery_app import app
    from core.redis import redis_client

    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    app._pool = None  # Celery caches its broker connection pool and producer pool
    app.amqp._producer_pool = None
    redis_client.cache_clear()


@pytest.fixture
def private_broker(services: Services, tmp_path) -> Iterator[PrivateBroker]:
    server = EmbeddedRedis(tmp_path, free_port(), appendonly=False)
    url = server.start()
    _point_clients_at(url)
    yield PrivateBroker(server, url)
    server.stop()
    _point_clients_at(services.redis_url)


@pytest.fixture
def private_control_worker(services: Services, private_broker: PrivateBroker, transactional_db):
    """A control worker on the private broker (the session's one keeps serving the shared broker)."""
    env = {**_child_env(services), "REDIS_URL": private_broker.url}
    with _running_control_worker(env, "private-control-worker") as process:
        yield process


@pytest.fixture
def private_lane_consumers(
    services: Services, private_broker: PrivateBroker, transactional_db
) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts `consume_lanes` processes on the private broker, each with extra environment (a test may
    kill them); all stopped at teardown."""
    with contextlib.ExitStack() as running:

        def start(**extra_env: str) -> subprocess.Popen:
            env = {**_child_env(services), "REDIS_URL": private_broker.url, **extra_env}
            return running.enter_context(_running_control_worker(env, "private-lane-consumer"))

        yield start


@dataclass
class PrivateDatabase:
    """A Postgres server of one test's own, migrated, which the test may stop and start again."""

    server: EmbeddedPostgres
    url: str

    def scalar(self, query: str, params: tuple = ()) -> object:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchone()[0]

    def rows(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture
def private_postgres() -> Iterator[PrivateDatabase]:
    # A short folder of its own: Postgres's socket path must fit in 107 bytes, which pytest's
    # per-worker tmp_path under xdist does not.
    folder = Path(tempfile.mkdtemp(prefix="jq-pg-"))
    server = EmbeddedPostgres(folder, free_port())
    url = server.start()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "settings.base"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    yield PrivateDatabase(server, url)
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _collect_static_files(env: dict[str, str]) -> None:
    """The API server serves /static from STATIC_ROOT (WhiteNoise), as under `runstack`; once a run."""
    if _collect_static_files.done:
        return
    argv = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    subprocess.run(argv, env=env, cwd=ROOT, check=True)
    _collect_static_files.done = True


_collect_static_files.done = False


@contextlib.contextmanager
def _running_api_server(env: dict[str, str], interface: str = "wsgi") -> Iterator[str]:
    """The API as `runstack` starts it, yielding its base URL: under the REST API's WSGI server
    (API_SERVER), or with interface="asgi" the live server (LIVE_SERVER: HTTP and the WebSockets)."""
    from devstack.embedded import port_is_open

    _collect_static_files(env)
    port = free_port()
    name = settings.API_SERVER if interface == "wsgi" else settings.LIVE_SERVER
    argv = server_named(name, interface).argv("127.0.0.1", port)
    with open(TEST_DATA_DIR / "api-server.log", "ab") as log:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: process.poll() is not None or port_is_open(port),
                timeout=PROCESS_START_TIMEOUT_S,
                what="the API server to listen",
            )
            assert process.poll() is None, "the API server exited; see .pytest-data/api-server.log"
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process, timeout=TEST_STOP_TIMEOUT_S)


@dataclass
class PrivateStack:
    """A control plane of one test's own: its Postgres, broker, control worker and API server."""

    database: PrivateDatabase
    broker: PrivateBroker
    env: dict[str, str]
    api_url: str
    api_key: str


@pytest.fixture
def private_stack(services: Services, private_postgres, private_broker) -> Iterator[PrivateStack]:
    env = {**_child_env(services), "DATABASE_URL": private_postgres.url, "REDIS_URL": private_broker.url}
    api_key = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "private-stack"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with (
        _running_control_worker(env, "private-stack-control-worker"),
        _running_api_server(env) as api_url,
    ):
        yield PrivateStack(private_postgres, private_broker, env, api_url, api_key)


@pytest.fixture
def scaled_out(services: Services, control_worker, transactional_db) -> Iterator[list[str]]:
    """Scale-out as deployed: a second control worker beside the session's, and two API servers, all
    on the session's database and broker; yields the API servers' base URLs."""
    env = _child_env(services)
    with (
        _running_control_worker(env, "control-worker-2"),
        _running_api_server(env) as first,
        _running_api_server(env) as second,
    ):
        yield [first, second]


@pytest.fixture
def journal(tmp_path, monkeypatch) -> Path:
    """A file where every simulated job run that completes appends a line (GPU workers started after
    this fixture inherit it): the ground truth for "nothing ran to completion twice"."""
    path = tmp_path / "simulation-journal.txt"
    monkeypatch.setenv("SIMULATION_JOURNAL", str(path))
    return path


@dataclass(frozen=True)
class FaultTally:
    """What a fault scenario did to its jobs; `duplicated` and `lost` must be 0."""

    scenario: str
    submitted: int
    completed: int
    dead_lettered: int
    duplicated: int  # jobs whose work ran to completion more than once, by the journal
    lost: int  # jobs accepted but neither finished, failed nor cancelled
    # Work a killed worker finished but never reported, so its attempt was lost and run again:
    # at-least-once execution, which no job system can avoid without the engine's help.
    rerun_after_crash: int = 0

    def record(self) -> FaultTally:
        """Print the tally and append it to `.pytest-data/fault-tallies.jsonl` for the record."""
        import json

        line = json.dumps(self.__dict__)
        print(f"fault tally: {line}")
        with open(TEST_DATA_DIR / "fault-tallies.jsonl", "a") as tallies:
            tallies.write(line + "\n")
        return self


def tally_faults(
    scenario: str,
    statuses: dict[str, str],
    dead_lettered: int,
    journal_path: Path,
    lost_attempts: set[tuple[str, int]] = frozenset(),
) -> FaultTally:
    """Count a scenario's outcomes. `lost_attempts` are the (job id, attempt) pairs the control plane
    declared lost with their worker; a journal line for one of them is a rerun, not a duplicate."""
    from collections import Counter

    lines = journal_path.read_text().splitlines() if journal_path.exists() else []
    runs = [(job_id, int(attempt)) for job_id, attempt in (line.split() for line in lines)]
    reruns = {job_id for job_id, attempt in runs if (job_id, attempt) in lost_attempts}
    reported = Counter(job_id for job_id, attempt in runs if (job_id, attempt) not in lost_attempts)
    return FaultTally(
        scenario=scenario,
        submitted=len(statuses),
        completed=sum(status == "completed" for status in statuses.values()),
        dead_lettered=dead_lettered,
        duplicated=sum(count > 1 for job_id, count in reported.items() if job_id in statuses),
        lost=sum(status not in {"completed", "failed", "cancelled"} for status in statuses.values()),
        rerun_after_crash=len(reruns & set(statuses)),
    ).record()


@dataclass
class LiveStack:
    """The live server (ASGI: HTTP and the WebSockets) and the event relay, on the session's database
    and Redis; a socket there follows at most `max_subscriptions` (a limit a test can reach quickly)."""

    ws_url: str
    api_url: str
    max_subscriptions: int = 50


@pytest.fixture
def live_stack(services: Services, transactional_db, django_db_blocker) -> Iterator[LiveStack]:
    """Per test, and stopped before its database is emptied: a relay that outlived the test could
    deadlock with the flush's TRUNCATE. Only the live relay runs: the webhook and EmProps pumps
    would deliver for tests that run their own."""
    env = {
        **_child_env(services),
        "LIVE_MAX_SUBSCRIPTIONS": str(LiveStack.max_subscriptions),
        "EVENT_CONSUMERS": "events.relay.run_relay",
    }
    argv = [sys.executable, "manage.py", "relay_events"]
    with open(TEST_DATA_DIR / "relay.log", "ab") as log:
        relay = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with _running_api_server(env, "asgi") as api_url:
            yield LiveStack(ws_url=api_url.replace("http://", "ws://") + "/ws", api_url=api_url)
    finally:
        stop_process(relay, timeout=TEST_STOP_TIMEOUT_S)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# What the webhook tests run the delivery side with: a short schedule, loopback allowed.
WEBHOOK_TEST_ENV = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_RETRY_SCHEDULE_SECONDS": "1,2",
    "WEBHOOK_RETRY_JITTER": "0",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def webhook_service(services: Services, transactional_db, settings) -> Iterator[Callable[..., None]]:
    """Start the webhook pump (`relay_events`) and a delivery worker, with WEBHOOK_* overrides.

    The same overrides apply in this process (the API checks targets on save)."""
    from webhooks.worker import delivery_worker_argv

    started: list[subprocess.Popen] = []

    def start(concurrency: int = 4, **overrides: str) -> None:
        env = {**_child_env(services), **WEBHOOK_TEST_ENV, **overrides}
        settings.WEBHOOK_ALLOWED_NETWORKS = env["WEBHOOK_ALLOWED_NETWORKS"].split(",")
        with open(TEST_DATA_DIR / "webhook-pump.log", "ab") as log:
            argv = [sys.executable, "manage.py", "relay_events"]
            started.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        with open(TEST_DATA_DIR / "webhook-worker.log", "ab") as log:
            argv = delivery_worker_argv(f"webhooks-{uuid.uuid4().hex[:6]}", concurrency, log_level="WARNING")
            started.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

    yield start
    stop_processes(started, timeout=TEST_STOP_TIMEOUT_S)


@pytest.fixture
def emprops_standin() -> Iterator[EmpropsStandIn]:
    from tests.emprops_standin import EmpropsStandIn

    standin = EmpropsStandIn()
    yield standin
    with contextlib.suppress(OSError):
        standin.stop()


@dataclass
class RunningRelay:
    """`manage.py relay_events` (the relay, the webhook pump and the EmProps pump), restartable."""

    env: dict[str, str]
    process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(TEST_DATA_DIR / "relay.log", "ab") as log:
            argv = [sys.executable, "manage.py", "relay_events"]
            self.process = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=TEST_STOP_TIMEOUT_S)
            self.process = None


@pytest.fixture
def emprops_relay(services: Services, emprops_standin, transactional_db, settings) -> Iterator[RunningRelay]:
    """The event consumers pointed at the EmProps stand-in, with a short retry schedule (here too)."""
    overrides = {
        "EMPROPS_API_URL": emprops_standin.url,
        "EMPROPS_API_KEY": emprops_standin.api_key,
        "EMPROPS_RETRY_SCHEDULE_SECONDS": "0.2,0.3,0.3,0.5",
        "EMPROPS_PUMP_POLL_SECONDS": "0.2",
        "EMPROPS_READ_TIMEOUT_SECONDS": "3",
    }
    settings.EMPROPS_API_URL, settings.EMPROPS_API_KEY = emprops_standin.url, emprops_standin.api_key
    relay = RunningRelay({**_child_env(services), **overrides})
    relay.start()
    yield relay
    relay.stop()
