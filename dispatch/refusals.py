"""Messages from GPU workers that were not applied: counted by reason and by sender in the broker's
Redis (shared by every consumer) and shown to operators (`GET /api/fleet/refusals`, `/metrics`). A
count that grows means a worker is misbehaving, or someone is trying something; the sender is the
worker whose own lane the message came from, which only its credential can write to.

Reasons, from the edge (`wire.edge`, `core.batch_consumer`): `oversized` (above
LANE_MAX_MESSAGE_BYTES, refused before decoding), `overflowed` (beyond LANE_MAX_WAITING_PER_SENDER
waiting in its lane), `malformed` (not a task message), `unknown_kind` (a task its lane does not
carry), `invalid` (fields that break the message's types or bounds), `apply_failed` and
`redelivered_too_often` (kept in the lanes' dead-letter list). From applying them
(`dispatch.lane_batches`): `report_lease_mismatch` (a job report whose lease token is not that of an
attempt given to its sender), `no_credential` (a fleet message from a worker without an active
credential), `description_not_sender` (a description naming another worker, or another machine than
the credential's), `registration_beyond_credential` (a pool or customers its credential does not allow).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import redis

from core.batch_consumer import DEAD_LETTERS_KEY, Refusal
from core.redis import redis_client
from wire.json_types import JsonObject
from wire.logs import redact

logger = logging.getLogger(__name__)

REFUSALS_KEY = "jobqueue:refused_messages"
SENDERS_KEY = "jobqueue:refused_by_worker"


def record(refused: Sequence[Refusal]) -> None:
    """Count refusals by reason and by sender (one round trip), and log them: a line per sender and
    reason, so a worker that floods its lane cannot flood the logs too."""
    grouped: dict[tuple[str, str], list[Refusal]] = {}
    for refusal in refused:
        grouped.setdefault((refusal.sender, refusal.reason), []).append(refusal)
    for (sender, reason), group in grouped.items():
        logger.warning(
            "ignored %d message(s) from worker %s: %s (%s)",
            sum(r.amount for r in group),
            sender,
            reason,
            redact(group[0].detail)[:200],
        )
    try:
        pipeline = redis_client().pipeline(transaction=False)
        for refusal in refused:
            pipeline.hincrby(REFUSALS_KEY, refusal.reason, refusal.amount)
            pipeline.hincrby(SENDERS_KEY, refusal.sender, refusal.amount)
        pipeline.execute()
    except redis.RedisError:
        logger.warning("could not count %d refused message(s)", len(refused))


def counts() -> dict[str, int]:
    raw = redis_client().hgetall(REFUSALS_KEY)
    return {key.decode(): int(value) for key, value in raw.items()}  # type: ignore[union-attr]


def by_sender() -> dict[str, int]:
    raw = redis_client().hgetall(SENDERS_KEY)
    return {key.decode(): int(value) for key, value in raw.items()}  # type: ignore[union-attr]


def dead_letters(limit: int = 50) -> list[JsonObject]:
    """The newest messages no consumer could apply, each with the list (so the sender) it came from;
    secrets masked."""
    entries = []
    for raw in redis_client().lrange(DEAD_LETTERS_KEY, 0, limit - 1):  # type: ignore[union-attr]
        entry = json.loads(raw)
        entry["message"] = redact(str(entry.get("message", "")))[:2000]
        entries.append(entry)
    return entries
