"""More control workers and API processes on the same Postgres and Redis are the scale-out path:
together they assign every job once and lose no report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from jobqueue.models import DeadLetterJob, Job, JobExecution
from tests.conftest import tally_faults, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS = 240


def test_two_control_workers_and_two_api_servers_assign_each_job_once_and_lose_nothing(
    scaled_out, gpu_worker, api_key, journal
):
    for _ in range(3):
        gpu_worker(slots=2)
    session = requests.Session()
    session.headers["x-api-key"] = api_key[1]

    def submit(n: int) -> str:
        body = {"type": "simulation", "payload": {"duration": 0.02, "steps": 2}}
        response = session.post(f"{scaled_out[n % 2]}/api/jobs", json=body, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["job_id"]

    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(submit, range(JOBS)))

    finished = Job.objects.filter(pk__in=job_ids, status__in=["completed", "failed", "cancelled"])
    wait_for(lambda: finished.count() == JOBS, timeout=120, interval=0.5, what="every job to finish")
    statuses = dict(Job.objects.filter(pk__in=job_ids).values_list("pk", "status"))
    tally = tally_faults(
        "two control workers, two API servers",
        {str(k): v for k, v in statuses.items()},
        DeadLetterJob.objects.filter(job_id__in=job_ids).count(),
        journal,
    )
    assert tally.completed == JOBS
    assert tally.duplicated == 0 and tally.lost == 0
    # Assigned once: a job given to two workers would show a second attempt.
    assert set(Job.objects.filter(pk__in=job_ids).values_list("attempt", flat=True)) == {1}
    assert JobExecution.objects.filter(job_id__in=job_ids).count() == JOBS
