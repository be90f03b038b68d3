"""Jobs that wait for other jobs (`depends_on` on a single submit): the job waits until every job it
names has completed, then becomes pending with their results as its inputs; if one of them fails or
is cancelled, it is cancelled (it can never run).

Lock order: the named jobs' rows are locked (in id order) while the new job is created, so a
dependency that ends meanwhile either committed before (and is seen ended) or waits for the new job's
commit and then releases it (`DependencyListener.job_finished`, in the ending job's transaction).
"""

from __future__ import annotations

from typing import Any

from django.db.models.functions import Now

from core.errors import Conflict, NotFound
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.cancellation import cancel_unstarted
from jobqueue.models import TERMINAL_STATUSES, Job, JobDependency, JobStatus
from jobqueue.transitions import transition

MAX_DEPENDENCIES = 50


class DependencyNotFound(NotFound):
    """A job named in depends_on does not exist (or is another tenant's)."""

    code = "job_not_found"


class DependencyEnded(Conflict):
    """A job named in depends_on failed or was cancelled: this job could never run."""

    code = "dependency_failed"


def prepare(depends_on: list[Any], tenant_id: int) -> tuple[bool, list[dict[str, Any]]]:
    """Lock the jobs named (the caller's transaction) and say whether the new job must wait; when it
    need not (all completed), the inputs it starts with."""
    named = list(
        Job.objects.select_for_update().filter(pk__in=depends_on, tenant_id=tenant_id).order_by("id")
    )
    missing = {str(job_id) for job_id in depends_on} - {str(job.pk) for job in named}
    if missing:
        raise DependencyNotFound(field="depends_on", job_ids=sorted(missing))
    ended = [
        str(job.pk) for job in named if job.status in TERMINAL_STATUSES and job.status != JobStatus.COMPLETED
    ]
    if ended:
        raise DependencyEnded(field="depends_on", job_ids=ended)
    if all(job.status == JobStatus.COMPLETED for job in named):
        return False, _inputs(named)
    return True, []


def release_waiting(job_id: Any, inputs: list[dict[str, Any]]) -> Job | None:
    """A waiting job whose dependencies all completed becomes pending, their results its inputs (a
    job of a single submit's `depends_on`, or a workflow step); None if it no longer waits."""
    return transition(
        job_id,
        from_statuses={JobStatus.WAITING},
        to=JobStatus.PENDING,
        inputs=inputs,
        queued_at=Now(),
        event=EventType.JOB_QUEUED,
        event_payload={"reason": "dependencies_completed"},
    )


def record(job: Job, depends_on: list[Any]) -> None:
    JobDependency.objects.bulk_create(
        JobDependency(job=job, depends_on_id=other) for other in set(depends_on)
    )


def _inputs(parents: list[Job]) -> list[dict[str, Any]]:
    return [{"job_id": str(parent.pk), "result": parent.result} for parent in parents]


class DependencyListener(lifecycle.JobListener):
    def job_finished(self, job: Job) -> None:
        """Release the jobs waiting on this one (when all theirs completed), or cancel them."""
        waiting = (
            Job.objects.filter(dependency_links__depends_on=job, status=JobStatus.WAITING)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if job.status != JobStatus.COMPLETED:
            for dependent in waiting:
                cancel_unstarted(dependent, f"dependency {job.pk} {job.status}")
            return
        released = []
        for dependent in waiting:
            parents = list(Job.objects.filter(dependent_links__job_id=dependent).order_by("id"))
            if all(parent.status == JobStatus.COMPLETED for parent in parents):
                moved = release_waiting(dependent, _inputs(parents))
                if moved is not None:
                    released.append(moved.pk)
        lifecycle.jobs_pending(released)
