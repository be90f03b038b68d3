"""Who may take part in the fleet: join tokens, and the credential each GPU worker buys with one.

An operator makes a join token for a pool (and optionally customers), which expires and can be
revoked. A worker presents it once (`POST /api/fleet/join`) and gets a credential of its own: a
broker user with a random secret (`machines/broker_users.py`), under its worker id, for the token's
pool and customers. The secret is also the worker's key on fleet messages (`verified`), so a worker
can speak only for itself. Revoking a credential deletes its broker user: the worker is cut off at
once (its connections are closed) and its attempts are recovered by the lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

import redis
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, DomainError
from machines import broker_users, registry
from machines.models import JoinToken, WorkerCredential
from wire import names

TOKEN_PREFIX = "jqj_"


class JoinTokenRefused(DomainError):
    """The join token is unknown, expired, revoked or used up."""

    code = "join_token_refused"
    http_status = 403


class WorkerIdTaken(Conflict):
    """This worker id holds an active credential: revoke it first to join under this id."""

    code = "worker_id_taken"


class WorkerIdRevoked(Conflict):
    """This worker id's credential was revoked: a join token cannot take it back (an operator may
    issue a new credential under it, `manage.py create_worker_credential`)."""

    code = "worker_id_revoked"


class InvalidWorkerId(DomainError):
    """A worker id is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."""

    code = "invalid_worker_id"


def digest(secret: str) -> str:
    """SHA-256 hex: what Postgres keeps of a token or secret, and what Redis keeps of a secret
    (secrets are 256-bit random, so a fast hash is safe: there is no dictionary to attack)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_join_token(
    name: str,
    pool: str,
    *,
    expires_in: timedelta,
    customers: Iterable[str] = (),
    customers_tenant_id: int | None = None,
    max_workers: int | None = 1,
) -> tuple[JoinToken, str]:
    """A new join token, single-use unless `max_workers` says otherwise (None: any number); the token
    itself is returned once and never stored. Its customers are `customers_tenant_id`'s (none: the
    default tenant's)."""
    token = JoinToken(
        name=name,
        pool=pool,
        customers=sorted(set(customers)),
        customers_tenant_id=customers_tenant_id,
        max_workers=max_workers,
        expires_at=timezone.now() + expires_in,
    )
    raw = set_new_secret(token)
    token.save()
    return token, raw


def set_new_secret(token: JoinToken) -> str:
    """Give the (unsaved) token a new secret; returns it, to be shown once."""
    raw = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token.prefix, token.token_hash = raw[:10], digest(raw)
    return raw


def revoke_join_token(token: JoinToken) -> None:
    """No worker can join with it any more (those that joined keep their credentials)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def join(raw_token: str, worker_id: str, machine_id: str = "") -> tuple[WorkerCredential, str]:
    """The worker's new credential and its secret (shown once), if the token allows it to join."""
    if not re.match(names.WORKER_ID_PATTERN, worker_id or ""):
        raise InvalidWorkerId(field="worker_id")
    with transaction.atomic():
        token = JoinToken.objects.select_for_update().filter(token_hash=digest(raw_token or "")).first()
        if token is None or not token.is_usable():
            raise JoinTokenRefused()
        token.joined += 1
        token.save(update_fields=["joined"])
        return _issue(worker_id, token.pool, (token.customers, token.customers_tenant_id), machine_id, token)


def issue(
    worker_id: str,
    pool: str,
    customers: Iterable[str] = (),
    machine_id: str = "",
    customers_tenant_id: int | None = None,
) -> tuple[WorkerCredential, str]:
    """A credential made directly by an operator (`manage.py create_worker_credential`), no token."""
    with transaction.atomic():
        return _issue(worker_id, pool, (sorted(set(customers)), customers_tenant_id), machine_id, None)


def _issue(
    worker_id: str,
    pool: str,
    customers: tuple[list[str], int | None],
    machine_id: str,
    token: JoinToken | None,
) -> tuple[WorkerCredential, str]:
    """In the caller's transaction: refused while the worker id holds an active credential (so no
    host can take over another's id); the broker user is made before commit, so a broker that
    refuses leaves nothing behind."""
    held = WorkerCredential.objects.select_for_update().filter(pk=worker_id).first()
    if held is not None and held.revoked_at is None:
        raise WorkerIdTaken(field="worker_id")
    if held is not None and token is not None:
        raise WorkerIdRevoked(field="worker_id")
    secret = secrets.token_urlsafe(32)
    credential, _ = WorkerCredential.objects.update_or_create(
        pk=worker_id,
        defaults={
            "join_token": token,
            "pool": pool,
            "customers": customers[0],
            "customers_tenant_id": customers[1],
            "machine_id": machine_id,
            "secret_hash": digest(secret),
            "revoked_at": None,
            "created_at": timezone.now(),
        },
    )
    broker_users.apply(worker_id, credential.secret_hash)
    return credential, secret


def revoke(credential: WorkerCredential) -> None:
    """Cut the worker off: offline at once, and its broker user deleted after commit (its connections
    close at once; `sync` deletes it on the next round should the broker be unreachable now)."""
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    worker_id = credential.worker_id
    registry.cut_off(worker_id)
    transaction.on_commit(lambda: _delete_quietly(worker_id))


def _delete_quietly(worker_id: str) -> None:
    # A broker that does not answer now: `sync_broker_users` deletes the user once it does.
    with contextlib.suppress(redis.RedisError):
        broker_users.delete(worker_id)


def sync_broker_users() -> tuple[int, int]:
    """The broker's worker users made to match the active credentials (after a broker restart, or a
    revocation the broker missed); cheap when they already match."""
    active = WorkerCredential.objects.filter(revoked_at=None).values_list("worker_id", "secret_hash")
    return broker_users.sync(active)


def active_worker_ids() -> list[str]:
    """The workers that hold an active credential: the only ones whose lanes can carry messages."""
    return list(WorkerCredential.objects.filter(revoked_at=None).values_list("worker_id", flat=True))


def active(worker_ids: Iterable[str]) -> dict[str, WorkerCredential]:
    """The active credentials of these workers, by worker id (one query)."""
    ids = [worker_id for worker_id in worker_ids if isinstance(worker_id, str)]
    return {c.worker_id: c for c in WorkerCredential.objects.filter(pk__in=ids, revoked_at=None)}
