"""The control plane's direct Redis access (besides Celery): mirroring cancellation flags."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

from gpu_worker import protocol


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def publish_cancel_flag(job_id: str, attempt: int) -> None:
    redis_client().set(protocol.cancel_flag_key(job_id), attempt, ex=settings.CANCEL_FLAG_TTL_SECONDS)


def clear_cancel_flag(job_id: str) -> None:
    redis_client().delete(protocol.cancel_flag_key(job_id))
