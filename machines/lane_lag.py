"""How far behind the fleet lane is, so that a slow lane never makes a live worker look silent.

The fleet lane records, after each batch, how long its heartbeats waited (each worker's send time to
the batch applying it; the batch's median, so a few workers' wrong clocks do not count) in the broker,
for every process. A worker is silent only when it was not heard from for WORKER_OFFLINE_AFTER_SECONDS
*plus* that lag (at most WORKER_OFFLINE_LAG_ALLOWANCE_MAX_SECONDS): a heartbeat still waiting in the
lane is not silence. A lane that stopped altogether records nothing more, and its last lag expires.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence

import redis
from django.conf import settings

from core.redis import redis_client

logger = logging.getLogger(__name__)

KEY = "fleet:lag"
EXPIRES_S = 60  # a lag not recorded again within this long no longer counts
READ_EVERY_S = 1.0  # a process reads the shared value at most this often

_cached: tuple[float, float] = (0.0, 0.0)  # (read at, seconds)


def record(lags: Sequence[float]) -> None:
    """The fleet lane applied heartbeats that waited `lags` seconds each."""
    if not lags:
        return
    try:
        redis_client().set(KEY, max(0.0, statistics.median(lags)), ex=EXPIRES_S)
    except redis.RedisError:
        logger.warning("could not record the fleet lane's lag", exc_info=True)


def allowance() -> float:
    """Seconds added to a worker's silence allowance for the fleet lane's lag."""
    global _cached
    read_at, seconds = _cached
    if time.monotonic() - read_at < READ_EVERY_S:
        return seconds
    try:
        raw: bytes | None = redis_client().get(KEY)  # type: ignore[assignment]  # the sync client
        seconds = min(float(raw), settings.WORKER_OFFLINE_LAG_ALLOWANCE_MAX_SECONDS) if raw else 0.0
    except (redis.RedisError, ValueError):
        seconds = 0.0
    _cached = (time.monotonic(), seconds)
    return seconds
