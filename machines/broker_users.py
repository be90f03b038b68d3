"""GPU workers' users on the broker (Redis ACL): the one place their rights are written.

A worker's user may consume its own queue, push to its own report and fleet lanes (write only: it
can neither read nor pop them; and no other worker can write to them, so a lane names its sender),
and read its own cancel flags.
Nothing else: no other key, no channel (so no Celery remote control, no live events), no admin or
dangerous command (FLUSHALL, CONFIG, KEYS, SCAN, ACL), no scripting. The worker's Celery app is
configured to need no more (`gpu_worker/app.py`). Redis ≥ 7 (or Valkey) is needed for write-only
keys (`%W~`).

Users live in the broker's memory; Postgres holds the record (`WorkerCredential`, with the same
SHA-256 of the secret that Redis stores). `sync` makes the broker agree with it: users missing after
a broker restart are made again, users of revoked credentials are deleted (which closes their
connections at once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

import redis

from core.redis import redis_client
from wire import names

logger = logging.getLogger(__name__)

RULES_VERSION_KEY = "jobqueue:broker_users:rules"
# Connection housekeeping redis-py and kombu send; harmless.
_CONNECTION_COMMANDS = ("+ping", "+hello", "+client|setname", "+client|setinfo", "+client|id")


def rules(worker_id: str, secret_sha256: str) -> list[str]:
    """The ACL SETUSER rules of a worker's user (exact key names: ACL globs match by prefix)."""
    return [
        "reset",
        "on",
        f"#{secret_sha256}",
        "-@all",
        *_CONNECTION_COMMANDS,
        "+brpop",
        "+lpush",
        "+get",
        f"%RW~{names.worker_queue(worker_id)}",
        *(f"%W~{names.lane_list(lane, worker_id)}" for lane in names.LANES),
        f"%R~{names.CANCEL_FLAG_PREFIX.format(worker_id=worker_id)}*",
    ]


def apply(worker_id: str, secret_sha256: str, client: redis.Redis | None = None) -> None:
    (client or redis_client()).execute_command(
        "ACL", "SETUSER", names.broker_username(worker_id), *rules(worker_id, secret_sha256)
    )


def delete(worker_id: str, client: redis.Redis | None = None) -> None:
    """Delete the worker's user: its connections are closed at once and it cannot log in again; what
    it left in its lanes goes with it (nothing it says counts any more)."""
    client = client or redis_client()
    client.execute_command("ACL", "DELUSER", names.broker_username(worker_id))
    client.delete(*(names.lane_list(lane, worker_id) for lane in names.LANES))


def rules_version() -> str:
    """What the rules are now (a worker's, with its id and secret left out): users made by a release
    whose rules differ are made again."""
    return hashlib.sha256(" ".join(rules("<id>", "<secret>")).encode()).hexdigest()[:16]


def sync(active: Iterable[tuple[str, str]], client: redis.Redis | None = None) -> tuple[int, int]:
    """Make the broker's worker users exactly `active` (worker id, secret hash), under the rules of
    this release: returns how many were made (again) and how many deleted. Two round trips when
    nothing changed."""
    client = client or redis_client()
    wanted = {names.broker_username(worker_id): (worker_id, digest) for worker_id, digest in active}
    present = {
        name.decode() if isinstance(name, bytes) else name for name in client.execute_command("ACL", "USERS")
    }
    ours = {name for name in present if name.startswith(names.WORKER_QUEUE_PREFIX)}
    version = rules_version()
    if client.get(RULES_VERSION_KEY) != version.encode():
        present -= ours  # made under other rules (an upgrade): every one is made again
    missing = [wanted[name] for name in wanted.keys() - present]
    extra = sorted(ours - wanted.keys())
    if missing or extra:
        pipeline = client.pipeline(transaction=False)
        for worker_id, digest in missing:
            pipeline.execute_command(
                "ACL", "SETUSER", names.broker_username(worker_id), *rules(worker_id, digest)
            )
        if extra:
            pipeline.execute_command("ACL", "DELUSER", *extra)
        pipeline.set(RULES_VERSION_KEY, version)
        pipeline.execute()
        logger.info(
            "broker users: %d made again, %d of revoked credentials deleted", len(missing), len(extra)
        )
    return len(missing), len(extra)
