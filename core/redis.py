"""The control plane's own Redis client (the broker's server), besides Celery's connections."""

from __future__ import annotations

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
