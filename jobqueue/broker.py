"""The control plane's direct Redis access (besides Celery): telling workers which attempts to stop."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

from gpu_worker import protocol


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


# Raise the flag to ARGV[1] unless it is already higher (a later attempt's cancel must not be undone).
_RAISE_FLAG = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return current
"""


def stop_attempt(job_id: str, attempt: int) -> None:
    """Ask whichever worker runs `attempt` of the job (or an earlier one) to stop it."""
    redis_client().eval(
        _RAISE_FLAG, 1, protocol.cancel_flag_key(job_id), attempt, settings.CANCEL_FLAG_TTL_SECONDS
    )


def confirm_final_report(job_id: str, attempt: int) -> None:
    """Tell the worker its final report for `attempt` arrived (the same flag: that attempt is over),
    so it stops re-sending it. Short-lived: workers only wait minutes for this."""
    redis_client().eval(
        _RAISE_FLAG, 1, protocol.cancel_flag_key(job_id), attempt, settings.REPORT_CONFIRMATION_TTL_SECONDS
    )
