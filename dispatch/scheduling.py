"""What dispatch weighs after eligibility and priority (docs/scheduling.md): limits, then fair share,
as SQL over the dispatcher's rows.

Limits are the database's (`jobqueue_limits_of` and the running counts its trigger keeps, migration
jobqueue 0022): the trigger refuses a start past a limit whoever asks, so no number of dispatchers
can exceed one; the dispatcher reads the same counts only to pick what the trigger will accept."""

from __future__ import annotations

from django.db import connection

from jobqueue.models import ACTIVE_STATUSES, Job, statuses_sql
from jobqueue.running_counts import TENANT_PLACE
from wire.json_types import JsonObject


def _limits_with_counts(tenant: str, key: str, limit: str) -> str:
    """`FROM` each limit a tenant's job of a key is subject to (`l.place`, `l.cap`), with its running
    count (`c.running`, NULL while none ran)."""
    return f"""FROM jobqueue_limits_of({tenant}, {key}, {limit}) l
        LEFT JOIN jobqueue_runningcount c ON c.tenant_id = {tenant} AND c.place = l.place"""


def room_sql(tenant: str, key: str, limit: str) -> str:
    """How many more jobs of a tenant's key may start before a limit holds them (NULL: none limits
    them), from a snapshot: a start it allows can still be refused by the trigger under a race."""
    return f"(SELECT min(l.cap - coalesce(c.running, 0)) {_limits_with_counts(tenant, key, limit)})"


def group_room_sql(group: str) -> str:
    """`room_sql` for a group of pending jobs (one tenant's, of one key) headed by the row `group`."""
    return room_sql(f"{group}.tenant_id", f"{group}.concurrency_key", f"{group}.concurrency_limit")


#: ... for the tenant `t` as a whole.
TENANT_ROOM = room_sql("t.id", "''", "NULL")

#: A tenant `t`'s running jobs, which fair share weighs against its weight.
TENANT_RUNNING = (
    "(SELECT count(*) FROM jobqueue_job a WHERE a.tenant_id = t.id"
    f" AND a.status IN {statuses_sql(ACTIVE_STATUSES)})"
)


def fair_share_sql(ranked: str, enabled: bool = True) -> str:
    """Fair share's order among the rows `ranked` of one priority: the tenant whose running jobs,
    with those this offer already gives it (`nth`, from 1), weigh least against its weight goes
    first; on a tie, the older work. Weighted fair queuing over running jobs: two saturating tenants
    hold the fleet in the ratio of their weights, and a tenant with nothing running goes before one
    with a backlog of any depth. Not `enabled`: every tenant alike, so the oldest work goes first."""
    return f"({ranked}.running + {ranked}.nth)::float / {ranked}.weight" if enabled else "0::float"


def held_by_limit(job: Job) -> JsonObject | None:
    """The first limit that holds the pending `job` back now, for "why is my job waiting": its place
    and a sentence, such as `concurrency_key user-42 at its limit (2 of 2 running)`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT l.place, l.cap, coalesce(c.running, 0)
            {_limits_with_counts("%(tenant)s", "%(key)s", "%(limit)s")}
            WHERE coalesce(c.running, 0) >= l.cap ORDER BY l.place LIMIT 1""",
            {"tenant": job.tenant_id, "key": job.concurrency_key, "limit": job.concurrency_limit},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    place, cap, running = row
    what = "its tenant" if place == TENANT_PLACE else f"concurrency_key {job.concurrency_key}"
    return {"place": place, "message": f"{what} at its limit ({running} of {cap} running)"}
