"""A tenant's job quotas, checked when its clients submit (the API, a batch, a workflow, the client
socket; not a schedule's runs, which `max_schedules` bounds): how many jobs it may submit in one
second and how many may wait to run at once. The limits are the tenant's (`Tenant.quota`)."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from accounts.models import Tenant
from core.errors import TooManyRequests
from core.redis import count_in_this_second, redis_client
from jobqueue.models import NOT_STARTED_STATUSES, Job

log = logging.getLogger(__name__)
#: How long a tenant's queued count read from Postgres is reused (plus what was admitted since).
QUEUED_COUNT_TTL_SECONDS = 1


class SubmitRateExceeded(TooManyRequests):
    """The tenant submits more jobs per second than its quota allows; retry in a second."""

    code = "submit_rate_exceeded"


class QueuedJobsQuotaExceeded(TooManyRequests):
    """The tenant has as many jobs waiting to run as its quota allows; retry when some have started."""

    code = "queued_jobs_quota_exceeded"
    retry_after_seconds = 5


def admit_jobs(tenant: Tenant, count: int) -> None:
    """Admit `count` new jobs of the tenant, or raise why not (a 429 with Retry-After).

    While Redis is unreachable, jobs are still accepted (Postgres is the record; they are dispatched
    once the broker is back): the submit rate goes unmetered and queued jobs are counted in Postgres."""
    try:
        _admit(tenant, count)
    except RedisError as exc:
        log.warning("Redis unreachable: tenant %s's submit rate not metered (%s)", tenant.pk, exc)
        queued_limit = tenant.quota("max_queued_jobs")
        if _queued_in_postgres(tenant.pk) + count > queued_limit:
            raise QueuedJobsQuotaExceeded(limit=queued_limit) from None


def _admit(tenant: Tenant, count: int) -> None:
    rate_limit = tenant.quota("max_submits_per_second")
    if count_in_this_second(f"submits:{tenant.pk}", count) > rate_limit:
        raise SubmitRateExceeded(limit=rate_limit)
    queued_limit = tenant.quota("max_queued_jobs")
    if _queued_with(tenant.pk, count) > queued_limit:
        _add_queued(tenant.pk, -count)  # not admitted after all
        raise QueuedJobsQuotaExceeded(limit=queued_limit)


# Adds to the cached count only while it exists: an INCRBY on an expired key would start a count that
# never expires from nothing.
_ADD_IF_CACHED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
"""


def _queued_with(tenant_id: int, admitting: int) -> int:
    """The tenant's queued jobs with `admitting` more: read from Postgres at most once a second per
    tenant (a count costs milliseconds at 100,000 queued), plus what was admitted since."""
    cached = _add_queued(tenant_id, admitting)
    if cached is not None:
        return cached
    queued = _queued_in_postgres(tenant_id) + admitting
    redis_client().set(_queued_key(tenant_id), queued, ex=QUEUED_COUNT_TTL_SECONDS)
    return queued


def _queued_in_postgres(tenant_id: int) -> int:
    return Job.objects.filter(tenant_id=tenant_id, status__in=NOT_STARTED_STATUSES).count()


def _add_queued(tenant_id: int, amount: int) -> int | None:
    total: Any = redis_client().eval(_ADD_IF_CACHED, 1, _queued_key(tenant_id), str(amount))
    return None if total is None else int(total)


def _queued_key(tenant_id: int) -> str:
    return f"quota:queued:{tenant_id}"
