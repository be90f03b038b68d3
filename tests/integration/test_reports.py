"""Worker reports are compare-and-set: duplicates and late arrivals change nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from dispatch.assignment import fill_worker
from dispatch.reports import (
    report_cancelled,
    report_failed,
    report_progress,
    report_started,
    report_succeeded,
)
from events.models import Event
from jobqueue.models import DeadLetterJob, ExecutionOutcome, Job, JobStatus
from tests.factories import make_job, make_worker

pytestmark = pytest.mark.django_db(transaction=True)

TRANSIENT = {"code": "GPU_OOM", "message": "out of memory", "class": "transient"}
PERMANENT = {"code": "INVALID_INPUT", "message": "bad prompt", "class": "permanent"}


@pytest.fixture
def running_job():
    job = make_job(max_retries=2)
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    assert report_started(str(job.id), job.attempt, worker.id)
    job.refresh_from_db()
    return job


def test_a_duplicate_result_report_changes_nothing(running_job):
    assert report_succeeded(str(running_job.id), 1, {"image": "a.png"})
    events_after_first = Event.objects.filter(job_id=running_job.id).count()

    assert not report_succeeded(str(running_job.id), 1, {"image": "b.png"})

    job = Job.objects.get(pk=running_job.pk)
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"image": "a.png"}
    assert Event.objects.filter(job_id=running_job.id).count() == events_after_first


def test_terminal_states_are_never_left(running_job):
    job_id = str(running_job.id)
    assert report_succeeded(job_id, 1, {"ok": True})

    assert not report_failed(job_id, 1, PERMANENT)
    assert not report_cancelled(job_id, 1)
    assert not report_started(job_id, 1, "someone")
    assert not report_progress(job_id, 1, 50)

    job = Job.objects.get(pk=job_id)
    assert (job.status, job.progress) == (JobStatus.COMPLETED, 100)


def test_a_report_from_a_previous_attempt_is_ignored(running_job):
    job_id = str(running_job.id)
    assert report_failed(job_id, 1, TRANSIENT)  # retried: back to pending, then attempt 2 on the same worker
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempt) == (JobStatus.ASSIGNED, 2)

    assert not report_succeeded(job_id, 1, {"late": True})
    assert not report_progress(job_id, 1, 99)

    job.refresh_from_db()
    assert job.status == JobStatus.ASSIGNED
    assert job.result is None


def test_a_transient_failure_is_retried_with_the_same_priority_and_place(running_job):
    before = Job.objects.get(pk=running_job.pk)
    report_failed(str(running_job.id), 1, TRANSIENT)

    after = Job.objects.get(pk=running_job.pk)
    assert after.retry_count == 1
    assert (after.effective_priority, after.order_time, after.submit_seq) == (
        before.effective_priority,
        before.order_time,
        before.submit_seq,
    )
    first_attempt = after.executions.get(attempt=1)
    assert first_attempt.outcome == ExecutionOutcome.FAILED
    assert first_attempt.error["code"] == "GPU_OOM"


def test_retries_exhausted_dead_letters_the_job(running_job):
    job_id = str(running_job.id)
    for attempt in (1, 2, 3):  # max_retries=2: attempts 1 and 2 are retried, 3 is final
        job = Job.objects.get(pk=job_id)
        assert job.attempt == attempt
        assert report_failed(job_id, attempt, TRANSIENT)

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "GPU_OOM"
    dead = DeadLetterJob.objects.get(job_id=job_id)
    assert (dead.reason, dead.attempts) == ("retries_exhausted", 3)


def test_a_permanent_failure_is_not_retried(running_job):
    assert report_failed(str(running_job.id), 1, PERMANENT)

    job = Job.objects.get(pk=running_job.pk)
    assert (job.status, job.retry_count) == (JobStatus.FAILED, 0)
    assert DeadLetterJob.objects.get(job_id=job.id).reason == "permanent_failure"
    assert list(Event.objects.filter(job_id=job.id).values_list("type", flat=True))[-2:] == [
        "job_failed",
        "job_dead_lettered",
    ]


def test_every_transition_writes_an_event(running_job):
    report_progress(str(running_job.id), 1, 40, "denoising")
    report_succeeded(str(running_job.id), 1, {"ok": True})

    types = list(Event.objects.filter(job_id=running_job.id).order_by("id").values_list("type", flat=True))
    assert types == ["job_submitted", "job_assigned", "job_started", "job_progress", "job_completed"]


def test_a_job_that_finished_before_reporting_its_start_is_dated_from_its_runtime():
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)

    assert report_succeeded(str(job.id), 1, {"ok": True}, runtime_ms=1500)

    job.refresh_from_db()
    execution = job.executions.get()
    assert 1.4 < (job.completed_at - job.started_at).total_seconds() < 1.7
    assert execution.started_at == job.started_at
    assert 1400 <= execution.duration_ms <= 1700


def test_an_attempt_on_a_silent_worker_is_lost_and_retried_elsewhere(settings):
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.leases import expire_leases
    from machines.models import Worker

    settings.WORKER_OFFLINE_AFTER_SECONDS = 30
    job = make_job()
    silent = make_worker()
    fill_worker(silent.id)
    report_started(str(job.id), 1, silent.id)
    Worker.objects.filter(pk=silent.pk).update(last_seen_at=timezone.now() - timedelta(minutes=5))
    healthy = make_worker()

    assert expire_leases() == 1
    assert expire_leases() == 0  # nothing twice

    job.refresh_from_db()
    assert (job.status, job.attempt, job.worker_id) == (JobStatus.ASSIGNED, 2, healthy.id)
    lost = job.executions.get(attempt=1)
    assert (lost.outcome, lost.error["code"]) == (ExecutionOutcome.LOST, "WORKER_LOST")
    assert Worker.objects.get(pk=silent.pk).status == "offline"
    assert not report_succeeded(str(job.id), 1, {"late": True})  # the lost worker's late report
    assert _stop_flag(job.id) == 1  # were it only cut off, that worker stops attempt 1


def test_an_assignment_its_worker_says_it_never_received_goes_back_to_the_queue(settings):
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.recovery import requeue_undelivered_assignments
    from machines.models import Worker

    settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS = 5
    received, undelivered, just_assigned = make_job(), make_job(), make_job()
    worker = make_worker(slots=3)
    assert len(fill_worker(worker.id)) == 3
    long_ago = timezone.now() - timedelta(seconds=30)
    Job.objects.filter(pk__in=[received.pk, undelivered.pk]).update(assigned_at=long_ago)
    Worker.objects.filter(pk=worker.pk).update(
        seen_attempts=[[str(received.id), 1]], seen_reported_at=timezone.now()
    )

    assert requeue_undelivered_assignments() == 1
    assert requeue_undelivered_assignments() == 0  # nothing twice

    statuses = {j.pk: (j.status, j.attempt) for j in Job.objects.all()}
    assert statuses[received.pk] == statuses[just_assigned.pk] == (JobStatus.ASSIGNED, 1)
    assert statuses[undelivered.pk] == (JobStatus.ASSIGNED, 2)  # offered again at once, a new attempt
    lost = Job.objects.get(pk=undelivered.pk).executions.get(attempt=1)
    assert (lost.outcome, lost.error["code"]) == (ExecutionOutcome.LOST, "NOT_DELIVERED")
    assert Job.objects.get(pk=undelivered.pk).retry_count == 0  # no retry used: it never ran
    assert _stop_flag(undelivered.id) == 1  # should the message turn up after all, it is skipped


def test_a_retry_waits_out_a_jittered_exponential_backoff_as_scheduled(settings, running_job):
    from datetime import timedelta

    from django.utils import timezone

    from jobqueue.release import release_scheduled_jobs

    settings.RETRY_BACKOFF_BASE_SECONDS = 10
    settings.RETRY_BACKOFF_FACTOR = 2
    before = timezone.now()
    report_failed(str(running_job.id), 1, TRANSIENT)

    job = Job.objects.get(pk=running_job.pk)
    assert job.status == JobStatus.SCHEDULED
    assert before <= job.scheduled_at <= before + timedelta(seconds=10.5)
    event = Event.objects.get(job_id=job.id, type="job_retry_scheduled")
    assert event.payload["next_run_at"] == job.scheduled_at.isoformat()

    Job.objects.filter(pk=job.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert release_scheduled_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.ASSIGNED, 2)  # the worker is free again


def test_backoff_ceiling_grows_exponentially_and_is_capped(settings):
    from jobqueue.backoff import retry_delay_seconds

    settings.RETRY_BACKOFF_BASE_SECONDS, settings.RETRY_BACKOFF_FACTOR = 1, 2
    settings.RETRY_BACKOFF_CAP_SECONDS = 5
    samples = {n: [retry_delay_seconds(n) for _ in range(300)] for n in (1, 2, 3, 10)}
    assert all(0 <= d <= 1 for d in samples[1]) and max(samples[1]) > 0.5
    assert all(0 <= d <= 2 for d in samples[2]) and max(samples[2]) > 1
    assert all(0 <= d <= 4 for d in samples[3]) and max(samples[3]) > 2
    assert all(0 <= d <= 5 for d in samples[10]) and max(samples[10]) > 4


def test_a_job_that_keeps_killing_its_worker_is_dead_lettered_as_poison(settings):
    settings.POISON_LOST_ATTEMPTS = 2
    job = make_job(max_retries=10)
    worker = make_worker()
    lost = {"code": "WORKER_LOST", "message": "gone", "class": "transient"}
    for attempt in (1, 2):
        fill_worker(worker.id)
        assert report_failed(str(job.id), attempt, lost, outcome=ExecutionOutcome.LOST)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert DeadLetterJob.objects.get(job_id=job.id).reason == "poison"


def test_the_control_plane_fails_an_attempt_past_its_timeout(settings):
    from datetime import timedelta

    from dispatch.leases import fail_timed_out_jobs

    settings.JOB_TIMEOUT_GRACE_SECONDS = 5
    job = make_job(max_retries=0)
    worker = make_worker()
    fill_worker(worker.id)
    report_started(str(job.id), 1, worker.id)
    assert fail_timed_out_jobs() == 0

    Job.objects.filter(pk=job.pk).update(
        started_at=job.created_at - timedelta(seconds=job.timeout_seconds + 6)
    )
    assert fail_timed_out_jobs() == 1

    job.refresh_from_db()
    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "TIMEOUT")
    assert not report_succeeded(str(job.id), 1, {"too": "late"})
    assert _stop_flag(job.id) == 1


def _stop_flag(job_id, attempt: int = 1) -> int | None:
    """The stop flag the worker given that attempt of the job reads (its own)."""
    from core.redis import redis_client
    from jobqueue.models import JobExecution
    from wire.names import cancel_flag_key

    worker_id = JobExecution.objects.get(job_id=job_id, attempt=attempt).worker_id
    value = redis_client().get(cancel_flag_key(worker_id, str(job_id)))
    return int(value) if value is not None else None


def test_a_stop_flag_is_only_ever_raised():
    from dispatch.cancel_flags import stop_attempt
    from jobqueue.models import JobExecution

    job = make_job()
    for attempt in (1, 3):  # two attempts of the job on one worker
        JobExecution.objects.create(job=job, attempt=attempt, worker_id="unit-one")
    stop_attempt(str(job.id), 3)
    stop_attempt(str(job.id), 1)
    assert _stop_flag(job.id, 3) == 3


def test_a_stop_flag_reaches_only_the_worker_given_that_attempt():
    from core.redis import redis_client
    from dispatch.cancel_flags import stop_attempt
    from jobqueue.models import JobExecution
    from wire.names import cancel_flag_key

    job = make_job()
    JobExecution.objects.create(job=job, attempt=1, worker_id="unit-first")
    JobExecution.objects.create(job=job, attempt=2, worker_id="unit-second")
    stop_attempt(str(job.id), 2)
    assert redis_client().get(cancel_flag_key("unit-second", str(job.id))) == b"2"
    assert redis_client().get(cancel_flag_key("unit-first", str(job.id))) is None


def test_a_job_submitted_while_a_report_frees_the_only_worker_is_assigned_once_both_commit(running_job):
    submitted: dict[str, Job] = {}

    def submit_while_the_report_is_open() -> None:
        # Its dispatch, after its commit, still sees the worker running the job the report ends.
        submitted["job"] = make_job()
        connection.close()

    with transaction.atomic():
        assert report_succeeded(str(running_job.id), 1, {"ok": True})  # refills: nothing pending yet
        other = threading.Thread(target=submit_while_the_report_is_open)
        other.start()
        other.join(timeout=30)
        assert not other.is_alive()
        assert Job.objects.get(pk=submitted["job"].pk).status == JobStatus.PENDING

    job = Job.objects.get(pk=submitted["job"].pk)
    assert (job.status, job.worker_id) == (JobStatus.ASSIGNED, running_job.worker_id)


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"caption": "a cat\x00"}, "NUL"),
        ({"text": "\ud800"}, "surrogates"),
        ({"blob": "x" * 2000}, "over the limit"),
    ],
)
def test_a_result_the_database_cannot_store_fails_the_attempt_for_good_saying_why(
    running_job, settings, result, why
):
    settings.JOB_RESULT_MAX_BYTES = 1000

    assert report_succeeded(str(running_job.id), 1, result)

    job = Job.objects.get(pk=running_job.pk)
    assert job.status == JobStatus.FAILED and job.result is None
    assert job.error["code"] == "RESULT_UNSTORABLE" and why in job.error["message"]
    assert DeadLetterJob.objects.filter(job=job).exists()


def test_an_error_report_the_database_cannot_store_is_replaced_by_one_saying_so(running_job):
    assert report_failed(str(running_job.id), 1, {"code": "X", "message": "bad\x00", "class": "permanent"})

    job = Job.objects.get(pk=running_job.pk)
    assert job.status == JobStatus.FAILED
    assert (job.error["code"], job.error["class"]) == ("ERROR_UNSTORABLE", "permanent")
