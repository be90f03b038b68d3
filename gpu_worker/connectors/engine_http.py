"""HTTP plumbing shared by the connectors that talk to engines: a base class (where the engine is,
its health check, the artifact store), one session per connector with urllib3 retries for
idempotent reads, and engine answers mapped to transient or permanent errors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import ClassVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gpu_worker.artifacts import ArtifactStore, store_from_environment
from gpu_worker.connectors.base import Connector, JobContext, PermanentError, TransientError

# Connection refused, 502/503/504: retried briefly for GETs (an engine restarting); never for POSTs,
# which may not be idempotent (a prompt queued twice costs GPU time).
READ_RETRY = Retry(total=3, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods={"GET"})
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 5.0
MAX_READ_TIMEOUT_S = 600.0
ERROR_EXCERPT_CHARS = 500


def engine_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # engines are local; no proxy from the environment
    adapter = HTTPAdapter(max_retries=READ_RETRY)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def timeout_for(job: JobContext) -> tuple[float, float]:
    """(connect, read) timeouts that never outlast the job's own time limit."""
    return (CONNECT_TIMEOUT_S, max(1.0, min(MAX_READ_TIMEOUT_S, job.time_left())))


def check(response: requests.Response, engine: str) -> requests.Response:
    """The response if it is a success; a transient or permanent error naming the engine otherwise."""
    if response.ok:
        return response
    code = f"{engine.upper()}_HTTP_{response.status_code}"
    message = f"{engine} answered {response.status_code}: {response.text[:ERROR_EXCERPT_CHARS]}"
    if response.status_code in RETRYABLE_STATUSES:
        raise TransientError(message, code=code)
    raise PermanentError(message, code=code)


@contextlib.contextmanager
def engine_errors(engine: str) -> Iterator[None]:
    """Network failures talking to the engine are transient: it may be back for the next attempt."""
    try:
        yield
    except requests.Timeout as exc:
        raise TransientError(
            f"{engine} did not answer in time: {exc}", code=f"{engine.upper()}_TIMEOUT"
        ) from exc
    except requests.ConnectionError as exc:
        raise TransientError(f"{engine} is unreachable: {exc}", code=f"{engine.upper()}_UNREACHABLE") from exc


class EngineConnector(Connector):
    """A connector for an engine served over HTTP at a URL from the environment."""

    engine: ClassVar[str]  # its name in error codes and messages
    url_variable: ClassVar[str]  # the environment variable naming its URL
    default_url: ClassVar[str]
    health_path: ClassVar[str]  # a cheap GET that answers 2xx while the engine is up

    def __init__(self, base_url: str | None = None, store: ArtifactStore | None = None) -> None:
        self.base_url = (base_url or os.environ.get(self.url_variable, self.default_url)).rstrip("/")
        self.session = engine_session()
        self._store = store

    @property
    def store(self) -> ArtifactStore:
        """Where output files go; configured on first use, so engines without files need none."""
        self._store = self._store or store_from_environment()
        return self._store

    def health(self) -> bool:
        with engine_errors(self.engine):
            check(self.session.get(f"{self.base_url}{self.health_path}", timeout=5), self.engine)
        return True
