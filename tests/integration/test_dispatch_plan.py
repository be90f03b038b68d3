"""The dispatcher's query plans: assigning a worker, and the sweep looking for workers to offer work, read
only jobs of the workers' types and pools, and of those one entry per shape the worker cannot run,
however many jobs wait (EXPLAIN ANALYZE on the real statements; the assignment's is rolled back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from dispatch.assignment import (
    _ASSIGN_BEST_JOBS,
    _FREE_WORKERS_WITH_WORK,
    _liveness_params,
    _match_params,
    dispatch_all,
    fill_worker,
)
from jobqueue.job_request import JobRequest
from jobqueue.models import Job, JobStatus
from jobqueue.submission import submit_jobs
from machines.models import Worker
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

UNRUNNABLE = 3_000  # of a type no worker runs, of the worker's type for a pool it is not in, and of
# the worker's own type and pool in shapes it does not meet
MOST_ROWS_READ = 20  # index entries and rows any one scan of the job table may touch
SWEPT_WORKERS = 20


class RolledBack(Exception):
    pass


def _explain_assignment(worker: Worker) -> dict[str, Any]:
    """The executed plan of assigning the worker its best jobs; nothing it did is kept."""
    plan: dict[str, Any] = {}
    with pytest.raises(RolledBack), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _ASSIGN_BEST_JOBS[True], _match_params(worker))
            plan = cursor.fetchone()[0][0]["Plan"]
        raise RolledBack
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
def unrunnable_backlog() -> None:
    """Pending jobs no worker here can run, older than any other: first in dispatch order. Half are
    of the workers' own type and pool, in shapes none of them meets."""
    unmet = [
        make_job(type="nobody-runs-this"),
        make_job(pool="heavy"),
        make_job(capabilities=("nobody-has-this",)),
        make_job(gpu_memory_gb=80),
        make_job(models=("nobody-holds-this",)),
        make_job(gpu_memory_gb=80, models=("nobody-holds-this",)),
    ]
    each = UNRUNNABLE // len(unmet)
    submit_jobs([JobRequest.from_job(job) for job in unmet for _ in range(each)], api_key=None)


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobqueue_job")


def _assert_reads_only_what_workers_can_run(plan: dict[str, Any]) -> None:
    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "jobqueue_job" and "Scan" in n["Node Type"]]
    assert "Seq Scan" not in {n["Node Type"] for n in scans}
    assert "job_dispatch_by_shape" in {n.get("Index Name") for n in scans}
    for scan in scans:
        touched = scan["Actual Rows"] * scan["Actual Loops"] + scan.get("Rows Removed by Filter", 0)
        assert touched <= MOST_ROWS_READ, (scan["Node Type"], scan.get("Index Name"), touched)


def test_a_backlog_no_worker_can_run_is_never_read_when_a_worker_is_assigned(unrunnable_backlog):
    runnable = make_job(priority=10)  # lowest priority, newest: last in line of every pending job
    _analyze()
    worker = make_worker()

    _assert_reads_only_what_workers_can_run(_explain_assignment(worker))

    assert Job.objects.filter(status=JobStatus.PENDING).count() == UNRUNNABLE + 7  # rolled back
    assert Job.objects.get(pk=runnable.pk).status == JobStatus.PENDING


def test_the_dispatch_sweep_reads_no_backlog_no_worker_can_run(unrunnable_backlog):
    workers = [make_worker() for _ in range(SWEPT_WORKERS)]
    _analyze()

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _FREE_WORKERS_WITH_WORK, _liveness_params())
        plan = cursor.fetchone()[0][0]["Plan"]

    _assert_reads_only_what_workers_can_run(plan)
    assert dispatch_all() == []  # and nobody is offered anything
    assert not Worker.objects.filter(pk__in=[w.pk for w in workers], last_assigned_at__isnull=False).exists()


def test_jobs_that_differ_only_in_what_no_worker_is_matched_on_share_a_shape():
    def shape(job: Job) -> int:
        return Job.objects.values_list("shape", flat=True).get(pk=job.pk)

    plain = shape(make_job())
    assert shape(make_job(priority=90, payload={"prompt": "other"})) == plain
    for different in (
        make_job(type="other"),
        make_job(pool="heavy"),
        make_job(capabilities=("c",)),
        make_job(models=("m",)),
        make_job(gpu_memory_gb=8),
    ):
        assert shape(different) != plain


def _prepared_offers() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%ranges AS%picked AS%"]
        )
        return cursor.fetchone()[0]


def test_the_offer_is_prepared_once_per_session_and_run_again_without_planning(unrunnable_backlog):
    worker = make_worker()
    for _ in range(3):
        fill_worker(worker.pk)

    assert _prepared_offers() == 1


def test_prepared_statements_can_be_turned_off_for_poolers_that_cannot_keep_them(
    unrunnable_backlog, settings
):
    settings.DATABASE_PREPARED_STATEMENTS = False
    connection.close()  # a fresh session: nothing prepared in it yet
    job = make_job(priority=10)
    worker = make_worker()

    assigned = fill_worker(worker.pk)

    assert _prepared_offers() == 0
    assert [a.job_id for a in assigned] == [str(job.pk)]
