"""Cancel flags: how the control plane tells GPU workers (which have no database) which attempts to
stop, on the broker's Redis. One flag per job and worker (`names.cancel_flag_key`: a worker's broker
user reads its own flags only) holds the highest attempt that must stop: a cancelled job's, a lost or
timed-out attempt's, or one whose final report was applied. The worker told is the one that was
given the attempt (its execution's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings

from core.redis import redis_client
from jobqueue.models import JobExecution
from wire import names

logger = logging.getLogger(__name__)


# Raise the flag to ARGV[1] unless it is already higher (a later attempt's cancel must not be undone).
_RAISE_FLAG = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return current
"""


def stop_attempt(job_id: str, attempt: int) -> None:
    """Ask the worker given `attempt` of the job to stop it (an attempt never assigned has none)."""
    holder = JobExecution.objects.filter(job_id=job_id, attempt=attempt).values_list("worker_id", flat=True)
    worker_id = holder.first()
    if worker_id is None:
        return
    redis_client().eval(
        _RAISE_FLAG,
        1,
        names.cancel_flag_key(worker_id, job_id),
        str(attempt),
        str(settings.CANCEL_FLAG_TTL_SECONDS),
    )


def confirm_final_reports(reports: Iterable[tuple[str, str, int]]) -> None:
    """Tell each worker its final report for (worker, job, attempt) arrived (the same flag: that
    attempt is over), so it stops re-sending it; one round trip for them all. Short-lived: workers
    only wait minutes for this."""
    pipeline = redis_client().pipeline(transaction=False)
    ttl = str(settings.REPORT_CONFIRMATION_TTL_SECONDS)
    for worker_id, job_id, attempt in reports:
        pipeline.eval(_RAISE_FLAG, 1, names.cancel_flag_key(worker_id, job_id), str(attempt), ttl)
    pipeline.execute()


def stop_attempt_quietly(job_id: str, attempt: int, why: str) -> None:
    """`stop_attempt`, where a failure only costs GPU time: the attempt's reports are ignored anyway
    (or the request is stored in Postgres, and the dispatch sweep mirrors it again)."""
    try:
        stop_attempt(job_id, attempt)
    except Exception:
        logger.exception("could not raise the stop flag of job %s attempt %s (%s)", job_id, attempt, why)
