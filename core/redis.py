"""The control plane's own Redis client (the broker's server), besides Celery's connections."""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from django.conf import settings

CONNECT_TIMEOUT_SECONDS = 5


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )


def count_in_this_second(name: str, amount: int = 1) -> int:
    """Add `amount` to a counter of the current one-second window shared by every process (in the
    broker's Redis), and return the window's total so far: the rate limits' meter."""
    return count_in_window(name, 1, amount)


def count_in_window(name: str, seconds: int, amount: int = 1) -> int:
    """`count_in_this_second` over windows of `seconds`."""
    key = f"rate:{name}:{seconds}:{int(time.time()) // seconds}"
    pipeline = redis_client().pipeline()
    pipeline.incrby(key, amount)
    pipeline.expire(key, seconds + 1)
    total, _ = pipeline.execute()
    return int(total)
