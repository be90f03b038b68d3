"""A GPU worker's credential: its own broker user, which it gets by joining the fleet with a join token.

An operator makes a join token (`manage.py create_join_token`, the admin or `POST /api/join-tokens`).
`python -m gpu_worker --join-token …` exchanges it over HTTPS with the API (`POST /api/fleet/join`)
for a credential of its own: a broker user that can consume only this worker's queue, push only to
the report and fleet lanes and read only this worker's cancel flags, and a secret that doubles as
the worker's key on fleet messages. The credential is kept in a file readable by its owner only, so
a restarted worker comes back as itself; the join token can do nothing else. No Django here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wire import names
from wire.json_types import JsonObject

logger = logging.getLogger(__name__)

JOIN_TIMEOUT_S = (5, 30)  # connect, read
# Joining is idempotent until it succeeds (a refused one changes nothing): retry what may pass.
JOIN_RETRY = Retry(
    total=8, backoff_factor=0.5, status_forcelist=(429, 502, 503, 504), allowed_methods=None,
    respect_retry_after_header=True, raise_on_status=False,
)  # fmt: skip


class JoinRefused(RuntimeError):
    """The API refused the join token (expired, revoked, wrong pool, worker id taken): the text says why."""


@dataclass(frozen=True)
class Credential:
    worker_id: str
    username: str
    secret: str
    pool: str
    customers: list[str]

    def broker_url(self, broker_url: str) -> str:
        """`broker_url` (where the broker is) with this credential as its user and password."""
        parts = urlsplit(broker_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(self.username, safe='')}:{quote(self.secret, safe='')}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def from_broker_url(worker_id: str, broker_url: str) -> Credential | None:
    """A credential given directly, as the user and password of BROKER_URL (provisioned by an
    operator with `manage.py create_worker_credential`); None when the URL names no worker user."""
    parts = urlsplit(broker_url)
    username, secret = unquote(parts.username or ""), unquote(parts.password or "")
    if username != names.broker_username(worker_id) or not secret:
        return None
    return Credential(worker_id, username, secret, pool="", customers=[])


def load(path: Path) -> Credential | None:
    if not path.exists():
        return None
    return Credential(**json.loads(path.read_text()))


def save(path: Path, credential: Credential) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(credential.__dict__, file)
    temporary.replace(path)


def join(api_url: str, join_token: str, worker_id: str, machine_id: str) -> Credential:
    """Exchange the join token for this worker's credential."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=JOIN_RETRY))
    session.mount("https://", HTTPAdapter(max_retries=JOIN_RETRY))
    response = session.post(
        f"{api_url.rstrip('/')}/api/fleet/join",
        json={"worker_id": worker_id, "machine_id": machine_id},
        headers={"Authorization": f"Bearer {join_token}"},
        timeout=JOIN_TIMEOUT_S,
    )
    body = _json_or_empty(response)
    if response.status_code != 201:
        error = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
        raise JoinRefused(
            f"joining as {worker_id} was refused ({response.status_code} "
            f"{error.get('code', 'error')}): {error.get('message', response.text[:200])}"
        )
    data = body.get("credential", {})
    return Credential(
        worker_id=data["worker_id"],
        username=data["broker_username"],
        secret=data["broker_password"],
        pool=data["pool"],
        customers=list(data.get("customers", [])),
    )


def _json_or_empty(response: requests.Response) -> JsonObject:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
