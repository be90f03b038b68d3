"""The running counts limits read (`RunningCount`), kept by the database as jobs start and stop
(migration 0022's trigger). A tenant's own limit is set on a tenant that may already run jobs, so
saving a tenant counts them anew."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction

from accounts.models import Tenant
from jobqueue.models import ACTIVE_STATUSES, Job, RunningCount, statuses_sql

TENANT_PLACE = "tenant"  # as jobqueue_limits_of names it

_RECOUNT = f"""
    WITH marked AS (
        UPDATE jobqueue_job SET counted_in = array_remove(counted_in, %(place)s)
            || CASE WHEN %(limited)s THEN ARRAY[%(place)s]::varchar[] ELSE '{{}}' END
        WHERE tenant_id = %(tenant_id)s AND status IN {statuses_sql(ACTIVE_STATUSES)}
        RETURNING 1
    )
    INSERT INTO jobqueue_runningcount (tenant_id, place, running)
    SELECT %(tenant_id)s, %(place)s, count(*) FROM marked
    ON CONFLICT (tenant_id, place) DO UPDATE SET running = excluded.running
"""


_MAKE_PLACES = """
    INSERT INTO jobqueue_runningcount (tenant_id, place, running)
    SELECT DISTINCT job.tenant_id, l.place, 0
    FROM unnest(%(tenants)s::bigint[], %(keys)s::text[], %(limits)s::integer[]) job (tenant_id, key, cap),
        jobqueue_limits_of(job.tenant_id, job.key, job.cap) l
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING
"""


def make_places(jobs: Iterable[Job]) -> None:
    """Create the running counts new jobs with a limited key will take a place in, in one order:
    a start never waits on a count (the trigger skips a busy one), so each must exist before."""
    limited = [job for job in jobs if job.concurrency_key and job.concurrency_limit is not None]
    if not limited:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _MAKE_PLACES,
            {
                "tenants": [job.tenant_id for job in limited],
                "keys": [job.concurrency_key for job in limited],
                "limits": [job.concurrency_limit for job in limited],
            },
        )


def recount_tenant(tenant: Tenant) -> None:
    """Count the tenant's running jobs in its own place if it has a running limit (and none if not),
    so a limit set on a busy tenant holds from the next start. Starts committing while this runs
    were decided without it and may pass it once."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _RECOUNT,
            {"tenant_id": tenant.pk, "place": TENANT_PLACE, "limited": tenant.max_running_jobs is not None},
        )
    if tenant.max_running_jobs is None:
        RunningCount.objects.filter(tenant=tenant, place=TENANT_PLACE).delete()


def recount_on_save(sender: type[Tenant], instance: Tenant, **kwargs: Any) -> None:
    """A `post_save` receiver for tenants."""
    if not kwargs.get("raw"):
        recount_tenant(instance)
