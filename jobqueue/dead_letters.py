"""The dead-letter queue: requeue (redrive) one or many dead-lettered jobs, or discard them.

Requeueing is the one way a job leaves a terminal state, and only by an operator's request: the job
keeps its id and its execution history, gets a fresh retry budget, and goes back to `pending` with
its original priority and place in line. Its next attempt number continues the count, so a late
report from an attempt before the dead letter still changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Now

from events.recording import record_job_event
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.errors import DeadLetterAlreadyRequeued, DeadLetterNotFound
from jobqueue.models import OPEN_DEAD_LETTER, DeadLetterJob, Job, JobStatus
from jobqueue.transitions import transition


def requeue(dead_letter_id: int, requeued_by: str = "") -> Job:
    """Send one dead-lettered job back to the queue with a fresh retry budget."""
    with transaction.atomic():
        dead_letter = DeadLetterJob.objects.select_for_update(of=("self",)).filter(pk=dead_letter_id).first()
        if dead_letter is None:
            raise DeadLetterNotFound()
        if dead_letter.requeued_at is not None:
            raise DeadLetterAlreadyRequeued(
                requeued_at=dead_letter.requeued_at.isoformat(), job_id=str(dead_letter.job_id)
            )
        return _requeue_locked(dead_letter, requeued_by)


@dataclass(frozen=True)
class BulkRequeue:
    matched: int
    requeued: int

    @property
    def remaining(self) -> int:
        return self.matched - self.requeued


def requeue_many(dead_letters: QuerySet[DeadLetterJob], limit: int, requeued_by: str = "") -> BulkRequeue:
    """Requeue up to `limit` of the open dead letters in `dead_letters`, oldest first.

    Each job is requeued in its own short transaction, so a large redrive never holds many locks and
    a concurrent redrive of the same rows skips them instead of waiting or requeueing twice."""
    candidates = dead_letters.filter(OPEN_DEAD_LETTER)
    matched = candidates.count()
    requeued = 0
    for dead_letter_id in candidates.order_by("created_at", "id").values_list("id", flat=True)[:limit]:
        with transaction.atomic():
            dead_letter = (
                DeadLetterJob.objects.select_for_update(of=("self",), skip_locked=True)
                .open()
                .filter(pk=dead_letter_id)
                .first()
            )
            if dead_letter is not None:
                _requeue_locked(dead_letter, requeued_by)
                requeued += 1
    return BulkRequeue(matched=matched, requeued=requeued)


def discard(dead_letter_id: int, discarded_by: str = "") -> None:
    """Drop a dead letter for good; the job stays `failed` and the event log remembers it."""
    with transaction.atomic():
        dead_letter = DeadLetterJob.objects.select_related("job").filter(pk=dead_letter_id).first()
        if dead_letter is None:
            raise DeadLetterNotFound()
        record_job_event(
            EventType.DEAD_LETTER_DISCARDED,
            dead_letter.job,
            {"dead_letter_id": dead_letter.pk, "reason": dead_letter.reason, "discarded_by": discarded_by},
        )
        dead_letter.delete()


def _requeue_locked(dead_letter: DeadLetterJob, requeued_by: str) -> Job:
    job = Job.objects.select_for_update().get(pk=dead_letter.job_id)
    lifecycle.before_requeue(job)
    requeued = transition(
        job.pk,
        from_statuses={JobStatus.FAILED},
        to=JobStatus.PENDING,
        on_attempt=job.attempt,
        retry_count=0,
        redrive_count=job.redrive_count + 1,
        budget_start_attempt=job.attempt,
        error=None,
        completed_at=None,
        started_at=None,
        worker_id=None,
        machine_id=None,
        progress=0,
        stage="",
        queued_at=Now(),
        event=EventType.JOB_REQUEUED,
        event_payload={
            "dead_letter_id": dead_letter.pk,
            "reason": dead_letter.reason,
            "redrive_count": job.redrive_count + 1,
            "requeued_by": requeued_by,
        },
    )
    if requeued is None:  # the row is locked and was dead-lettered as failed: cannot happen
        raise DeadLetterAlreadyRequeued(job_id=str(job.pk), status=job.status)
    DeadLetterJob.objects.filter(pk=dead_letter.pk).update(requeued_at=Now(), requeued_by=requeued_by[:100])
    lifecycle.jobs_pending([requeued.pk])
    return requeued
