"""The dispatcher's query plan: assigning a worker reads only jobs of its types and pools, however many
others wait (checked with EXPLAIN ANALYZE on the real statement, then rolled back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from dispatch.assignment import _ASSIGN_BEST_JOBS, _match_params
from jobqueue.models import Job, JobStatus
from jobqueue.submission import JobRequest, submit_jobs
from machines.models import Worker
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

UNRUNNABLE = 3_000  # of a type no worker runs, and of the worker's type for a pool it is not in
MOST_ROWS_READ = 20  # index entries and rows any one scan of the job table may touch


class RolledBack(Exception):
    pass


def _explain_assignment(worker: Worker) -> dict[str, Any]:
    """The executed plan of assigning the worker its best jobs; nothing it did is kept."""
    plan: dict[str, Any] = {}
    with pytest.raises(RolledBack), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _ASSIGN_BEST_JOBS, _match_params(worker))
            plan = cursor.fetchone()[0][0]["Plan"]
        raise RolledBack
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_a_backlog_no_worker_can_run_is_never_read_when_a_worker_is_assigned():
    other_type = JobRequest.from_job(make_job(type="nobody-runs-this"))
    other_pool = JobRequest.from_job(make_job(pool="heavy"))
    submit_jobs([other_type] * (UNRUNNABLE // 2) + [other_pool] * (UNRUNNABLE // 2), api_key=None)
    runnable = make_job(priority=10)  # lowest priority, newest: last in line of every pending job
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobqueue_job")
    worker = make_worker()

    plan = _explain_assignment(worker)

    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "jobqueue_job" and "Scan" in n["Node Type"]]
    assert "Seq Scan" not in {n["Node Type"] for n in scans}
    assert "job_dispatch_by_type_pool" in {n.get("Index Name") for n in scans}
    for scan in scans:
        touched = scan["Actual Rows"] * scan["Actual Loops"] + scan.get("Rows Removed by Filter", 0)
        assert touched <= MOST_ROWS_READ, (scan["Node Type"], scan.get("Index Name"), touched)
    assert Job.objects.filter(status=JobStatus.PENDING).count() == UNRUNNABLE + 3  # rolled back
    assert Job.objects.get(pk=runnable.pk).status == JobStatus.PENDING
