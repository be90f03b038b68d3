"""The dispatcher's hooks into the job lifecycle (registered in `DispatchConfig.ready`): jobs that
become pending are offered to workers after commit, and stop requests reach the broker after commit."""

from __future__ import annotations

from django.db import transaction

from dispatch import cancel_flags
from dispatch.assignment import dispatch_on_commit
from jobqueue.lifecycle import JobListener
from jobqueue.models import JobKey


class DispatchJobListener(JobListener):
    def jobs_pending(self, job_ids: list[JobKey]) -> None:
        # After commit, each candidate worker in a transaction of its own: a transaction that held
        # more than one worker's lock could deadlock with another doing the same in another order.
        dispatch_on_commit(job_ids)

    def cancel_requested(self, job_id: JobKey, attempt: int) -> None:
        transaction.on_commit(lambda: cancel_flags.stop_attempt_quietly(str(job_id), attempt, "cancelled"))
