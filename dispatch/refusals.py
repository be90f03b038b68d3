"""Messages from GPU workers that were ignored because they could not prove who sent them, or said
more than their sender may: counted by reason in the broker's Redis (shared by every consumer) and
shown to operators (`GET /api/fleet/refusals`, the monitor). A count that grows means a worker is
misbehaving, or someone is trying something.

Reasons: `report_lease_mismatch` (a job report whose lease token is not its attempt's),
`fleet_key_mismatch` (a registration, heartbeat or deregistration whose key is not the named worker's
credential), `registration_beyond_credential` (a pool or customers its credential does not allow),
`description_refused` (a description that breaks `machines.descriptions`' rules).
"""

from __future__ import annotations

import logging

import redis

from core.redis import redis_client

logger = logging.getLogger(__name__)

REFUSALS_KEY = "jobqueue:refused_messages"


def count(reason: str, amount: int = 1, detail: str = "") -> None:
    logger.warning("ignored %d worker message(s): %s %s", amount, reason, detail)
    try:
        redis_client().hincrby(REFUSALS_KEY, reason, amount)
    except redis.RedisError:
        logger.warning("could not count %d refused message(s) (%s)", amount, reason)


def counts() -> dict[str, int]:
    raw = redis_client().hgetall(REFUSALS_KEY)
    return {key.decode(): int(value) for key, value in raw.items()}  # type: ignore[union-attr]
