"""The one dependency graph (`JobDependency` edges): a workflow's steps and a single submit's
`depends_on` wait by the same rule.

A waiting job counts the jobs it depends on that have not completed (`open_dependencies`). When one
completes, in that change's transaction, its dependents' rows are locked (in id order) and counted
down; a dependent whose count reaches zero becomes pending with their results as its inputs, in one
shape: `[{"step_index", "name", "job_id", "result"}]` in input order (a step's index and name in its
workflow; for `depends_on`, its place in the list and an empty name). When one fails or is cancelled,
its dependents are cancelled (they can never run), and theirs in turn. The count under the
dependent's row lock is what makes two parents completing at once release it exactly once.

Lock order: the finished job's row, then its dependents' rows in id order. A new job's named parents
are locked (in id order) while it is created, so a parent that ends meanwhile either committed
before (and is seen ended) or waits for the new job's commit and then counts it down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import F
from django.db.models.functions import Now

from core.errors import Conflict, NotFound
from events.types import EventType
from jobqueue import lifecycle
from jobqueue.cancellation import cancel_unstarted
from jobqueue.models import TERMINAL_STATUSES, Job, JobDependency, JobKey, JobStatus
from jobqueue.transitions import transition
from wire.json_types import JsonObject, JsonValue

MAX_DEPENDENCIES = 50


class DependencyNotFound(NotFound):
    """A job named in depends_on does not exist (or is another tenant's)."""

    code = "job_not_found"


class DependencyEnded(Conflict):
    """A job named in depends_on failed or was cancelled: this job could never run."""

    code = "dependency_failed"


@dataclass(frozen=True)
class Edge:
    """`job` waits for `depends_on`, which it receives as its input number `index`, called `name`."""

    job_id: JobKey
    depends_on: JobKey
    index: int
    name: str = ""


def prepare(depends_on: Sequence[JobKey], tenant_id: int) -> tuple[bool, list[JsonObject]]:
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
        results = {str(job.pk): job.result for job in named}
        return False, [_input(i, "", job_id, results[str(job_id)]) for i, job_id in _in_order(depends_on)]
    return True, []


def of_depends_on(job_id: JobKey, depends_on: Sequence[JobKey]) -> list[Edge]:
    """A single submit's `depends_on`, as edges: each named job an input, in the order named."""
    return [Edge(job_id, other, index) for index, other in _in_order(depends_on)]


def _in_order(depends_on: Sequence[JobKey]) -> list[tuple[int, JobKey]]:
    """The jobs named, each once, numbered in the order first named: their inputs' places."""
    return list(enumerate(dict.fromkeys(depends_on)))


_COUNT_OPEN = """
    UPDATE jobqueue_job AS job SET open_dependencies = (
        SELECT count(*) FROM jobqueue_jobdependency AS edge
        JOIN jobqueue_job AS parent ON parent.id = edge.depends_on_id
        WHERE edge.job_id = job.id AND parent.status <> %s
    )
    WHERE job.id = ANY(%s)
"""


def link(edges: Sequence[Edge]) -> None:
    """Record edges for new jobs (the caller's transaction) and count what each still waits for."""
    JobDependency.objects.bulk_create(
        JobDependency(job_id=e.job_id, depends_on_id=e.depends_on, input_index=e.index, input_name=e.name)
        for e in edges
    )
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_OPEN, [JobStatus.COMPLETED, list({e.job_id for e in edges})])


def release_waiting(job_id: JobKey, inputs: list[JsonObject]) -> Job | None:
    """A waiting job whose dependencies all completed becomes pending, their results its inputs; None
    if it no longer waits."""
    return transition(
        job_id,
        from_statuses={JobStatus.WAITING},
        to=JobStatus.PENDING,
        inputs=inputs,
        queued_at=Now(),
        event=EventType.JOB_QUEUED,
        event_payload={"reason": "dependencies_completed"},
    )


def inputs_of(job_id: JobKey) -> list[JsonObject]:
    """What a released job receives from the jobs it depends on."""
    edges = JobDependency.objects.filter(job_id=job_id).order_by("input_index", "depends_on_id")
    return [
        _input(index, name, parent, result)
        for index, name, parent, result in edges.values_list(
            "input_index", "input_name", "depends_on_id", "depends_on__result"
        )
    ]


def _input(index: int, name: str, job_id: JobKey, result: JsonValue) -> JsonObject:
    return {"step_index": index, "name": name, "job_id": str(job_id), "result": result}


def _completed(job: Job) -> None:
    """Count the completion off each waiting dependent; release those with none left (unless a
    listener holds one back: its workflow is ending, and will cancel it)."""
    dependents = list(
        Job.objects.select_for_update()
        .filter(dependency_links__depends_on=job, status=JobStatus.WAITING)
        .order_by("id")
        .values_list("id", "open_dependencies")
    )
    if not dependents:
        return
    Job.objects.filter(pk__in=[job_id for job_id, _ in dependents]).update(
        open_dependencies=F("open_dependencies") - 1
    )
    ready = [job_id for job_id, still_open in dependents if still_open == 1]
    if not ready:
        return
    held = lifecycle.held_back(ready)
    released = []
    for job_id in ready:
        if job_id not in held:
            moved = release_waiting(job_id, inputs_of(job_id))
            if moved is not None:
                released.append(moved.pk)
    lifecycle.jobs_pending(released)


_DESCENDANTS = """
    WITH RECURSIVE below(id) AS (
        SELECT job_id FROM jobqueue_jobdependency WHERE depends_on_id = %s
        UNION
        SELECT edge.job_id FROM jobqueue_jobdependency AS edge JOIN below ON edge.depends_on_id = below.id
    )
    SELECT id FROM below ORDER BY id
"""


def _ended_unfinished(job: Job) -> None:
    """Cancel every job that waits on this one, directly or through others: none of them can run."""
    with connection.cursor() as cursor:
        cursor.execute(_DESCENDANTS, [job.pk])
        below = [job_id for (job_id,) in cursor.fetchall()]
    for job_id in below:
        cancel_unstarted(job_id, f"dependency {job.pk} {job.status}")


class DependencyListener(lifecycle.JobListener):
    def job_finished(self, job: Job) -> None:
        """Count a completion off the jobs waiting on this one, or cancel them if it did not complete."""
        if job.status == JobStatus.COMPLETED:
            _completed(job)
        else:
            _ended_unfinished(job)
