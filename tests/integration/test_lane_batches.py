"""GPU workers' messages applied in batches (`dispatch/lane_batches.py`), directly and through the batch
consumer on the real broker (`core/batch_consumer.py`)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.batch_consumer import _TAKE_BATCH as TAKE_BATCH_SCRIPT
from core.batch_consumer import BatchConsumer, TaskMessage
from core.redis import redis_client
from dispatch.assignment import fill_worker
from dispatch.lane_batches import apply_batch
from events.models import Event
from jobqueue.models import Job, JobStatus
from machines.models import Worker, WorkerStatus
from tests.conftest import wait_for
from tests.factories import fleet_message, lease_of, make_job, make_worker, report, worker_key
from wire import names

pytestmark = pytest.mark.django_db(transaction=True)


def _succeeded(job: Job, attempt: int | None = None) -> TaskMessage:
    return report(names.REPORT_SUCCEEDED_TASK, job, {"ok": True}, 10, attempt=attempt)


def _assigned(worker: Worker) -> list[Job]:
    return list(Job.objects.filter(worker_id=worker.id, status=JobStatus.ASSIGNED).order_by("submit_seq"))


def test_a_batch_of_reports_ends_each_attempt_once_and_refills_the_freed_slots():
    jobs = [make_job() for _ in range(4)]
    worker = make_worker(slots=2)
    fill_worker(worker.id)
    first = _assigned(worker)
    assert len(first) == 2

    started = report(names.REPORT_STARTED_TASK, first[0], worker.id, 5)
    progress = [report(names.REPORT_PROGRESS_TASK, first[0], p, f"step {p}") for p in (20, 60)]
    stale = report(
        names.REPORT_SUCCEEDED_TASK,
        first[1],
        {},
        1,
        attempt=first[1].attempt + 7,
        lease=lease_of(first[1]),
    )
    apply_batch([started, *progress, _succeeded(first[0]), _succeeded(first[0]), stale, _succeeded(first[1])])

    statuses = dict(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("id", "status"))
    assert [statuses[j.pk] for j in first] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert len(_assigned(worker)) == 2  # both freed slots were refilled in the batch's transaction
    completions = Event.objects.filter(job_id__in=[j.pk for j in first], type="job_completed")
    assert completions.count() == 2  # the duplicate changed nothing
    progress_events = Event.objects.filter(job_id=first[0].pk, type="job_progress")
    assert [e.payload["progress"] for e in progress_events] == [60]  # only the batch's latest applies
    for job in first:  # each worker learns its final report arrived, after the commit
        assert int(redis_client().get(names.cancel_flag_key(worker.id, str(job.pk)))) >= job.attempt


def test_a_batch_of_heartbeats_refreshes_known_instances_and_brings_back_or_registers_the_others():
    live, silent = make_worker(), make_worker()
    long_ago = timezone.now() - timedelta(minutes=10)
    Worker.objects.filter(pk__in=[live.pk, silent.pk]).update(last_seen_at=long_ago)
    Worker.objects.filter(pk=silent.pk).update(status=WorkerStatus.OFFLINE)
    newcomer = f"unit-{uuid.uuid4().hex[:8]}"
    description = {
        "worker_id": newcomer,
        "instance_id": "new-instance",
        "machine_id": "unit-machine",
        "job_types": ["simulation"],
        "telemetry": {"gpu_utilization": 3},
    }
    keys = {worker_id: worker_key(worker_id) for worker_id in (live.id, silent.id, newcomer)}
    beats = [
        fleet_message(
            names.HEARTBEAT_TASK, live.id, live.instance_id, {"telemetry": {"n": 1}}, key=keys[live.id]
        ),
        fleet_message(
            names.HEARTBEAT_TASK, live.id, live.instance_id, {"telemetry": {"n": 2}}, key=keys[live.id]
        ),
        fleet_message(
            names.HEARTBEAT_TASK, silent.id, silent.instance_id, {"seen_attempts": []}, key=keys[silent.id]
        ),
        fleet_message(names.HEARTBEAT_TASK, newcomer, "new-instance", description, key=keys[newcomer]),
    ]
    apply_batch(beats)

    refreshed = Worker.objects.get(pk=live.pk)
    assert refreshed.last_seen_at > long_ago and refreshed.telemetry == {"n": 2}  # the latest one counts
    back = Worker.objects.get(pk=silent.pk)
    assert back.status == WorkerStatus.IDLE and back.seen_reported_at is not None
    changes = Event.objects.filter(type="worker_status_changed", worker_id=silent.id)
    assert [(e.payload["from"], e.payload["to"]) for e in changes] == [("offline", "idle")]
    assert Worker.objects.get(pk=newcomer).instance_id == "new-instance"  # re-registered from its beat


def _publish(queue: str, message: TaskMessage) -> None:
    from settings.celery import app

    app.send_task(message.task, args=message.args, kwargs=message.kwargs, queue=queue)


def _consume_until(consumer: BatchConsumer, messages: int) -> None:
    def consume() -> None:
        try:
            consumer.run()
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        wait_for(lambda: consumer.stats.messages + consumer.stats.dropped >= messages, what="the batch")
    finally:
        consumer.stop()
        thread.join(10)


def test_messages_that_cannot_be_read_or_applied_are_dropped_and_the_rest_of_their_batch_applied():
    jobs = [make_job() for _ in range(2)]
    worker = make_worker(slots=2)
    fill_worker(worker.id)
    queue = f"lane-test-{uuid.uuid4().hex[:6]}"
    first, second = (Job.objects.get(pk=job.pk) for job in jobs)
    _publish(queue, report(names.REPORT_SUCCEEDED_TASK, first, {"ok": 1}, 5))
    _publish(
        queue, TaskMessage(names.REPORT_SUCCEEDED_TASK, ("not-a-job-id", "not-an-attempt"), {})
    )  # raises
    _publish(queue, report(names.REPORT_SUCCEEDED_TASK, second, {"ok": 2}, 5))
    redis_client().lpush(queue, b"\xff not even JSON", b'{"properties": "not an envelope"}')
    consumer = BatchConsumer([queue], apply_batch, linger_s=0.5)

    _consume_until(consumer, 5)

    assert set(Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        JobStatus.COMPLETED
    }
    assert consumer.stats.dropped == 3
    assert redis_client().llen(queue) == 0
    unacked = settings.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_key"]
    assert not any(queue.encode() in entry for entry in redis_client().hvals(unacked))  # nothing comes back


@pytest.fixture
def succeeded_report_queued() -> tuple[Job, str]:
    """A job assigned to a worker, and a lane queue of this test's own holding its success report."""
    job = make_job()
    fill_worker(make_worker().id)
    job.refresh_from_db()
    queue = f"lane-test-{uuid.uuid4().hex[:6]}"
    _publish(queue, report(names.REPORT_SUCCEEDED_TASK, job, {"ok": 1}, 5))
    return job, queue


def test_a_batch_that_meets_an_unreachable_database_is_retried_until_it_applies(
    monkeypatch, succeeded_report_queued
):
    job, queue = succeeded_report_queued
    outages = iter([True, True])

    def flaky_apply(batch):
        from django.db import OperationalError

        if next(outages, False):
            raise OperationalError("connection refused")
        apply_batch(batch)

    monkeypatch.setattr("core.batch_consumer.RECONNECT_BACKOFF_S", 0.01)
    consumer = BatchConsumer([queue], flaky_apply, linger_s=0.01)

    _consume_until(consumer, 1)

    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert consumer.stats.retried == 2 and consumer.stats.dropped == 0


def test_messages_a_dead_consumer_took_come_back_after_the_visibility_timeout(
    settings, succeeded_report_queued
):
    job, queue = succeeded_report_queued
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 1,
    }
    dead = BatchConsumer([queue], apply_batch)
    taken = dead._take(redis_client().register_script(TAKE_BATCH_SCRIPT), 10)  # ... and then it died
    assert len(taken) == 1 and redis_client().llen(queue) == 0
    successor = BatchConsumer([queue], apply_batch)

    _consume_until(successor, 1)

    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def _key_for(description: dict) -> str:
    """The key of the worker the description names, when it names one a credential can have."""
    worker_id = description["worker_id"]
    return worker_key(worker_id) if re.match(names.WORKER_ID_PATTERN, worker_id) else "no-credential"


def _description(**fields: object) -> dict:
    worker_id = f"unit-{uuid.uuid4().hex[:8]}"
    return {
        "worker_id": worker_id,
        "instance_id": "i-1",
        "machine_id": "unit-machine",
        "job_types": ["simulation"],
        **fields,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_allowlist": "x"},  # a string where a list belongs broke every dispatch
        {"job_types": "simulation"},
        {"slots": 0},
        {"slots": "many"},
        {"worker_id": "has spaces"},
        {"gpu_memory_gb": "lots"},
        {"pool": ""},
        {"capabilities": ["x" * 1000]},
        {"machine": {"blob": "x" * 100_000}},
    ],
)
def test_a_registration_that_breaks_the_rules_is_refused_and_the_fleet_dispatches_as_before(bad):
    good, refused = _description(), _description(**bad)
    job = make_job()

    apply_batch(
        [
            fleet_message(names.REGISTER_WORKER_TASK, refused, key=_key_for(refused)),
            fleet_message(names.REGISTER_WORKER_TASK, good, key=worker_key(good["worker_id"])),
        ]
    )

    assert not Worker.objects.filter(pk=refused["worker_id"]).exists()
    job.refresh_from_db()
    assert (job.status, job.worker_id) == (JobStatus.ASSIGNED, good["worker_id"])
    assert make_job().status == JobStatus.PENDING  # and the next submission's dispatch does not fail


def test_a_heartbeat_with_malformed_attempts_is_refused_and_recovery_still_runs():
    from dispatch import recovery

    worker = make_worker()
    key = worker_key(worker.id)
    apply_batch(
        [
            fleet_message(
                names.HEARTBEAT_TASK, worker.id, worker.instance_id, {"seen_attempts": "all"}, key=key
            ),
            fleet_message(
                names.HEARTBEAT_TASK, worker.id, worker.instance_id, {"seen_attempts": [[1, "x"]]}, key=key
            ),
            fleet_message(  # a date Postgres cannot hold would fail the batch's statement
                names.HEARTBEAT_TASK,
                worker.id,
                worker.instance_id,
                {"seen_attempts": [], "sent_at": 1e300},
                key=key,
            ),
        ]
    )

    assert Worker.objects.get(pk=worker.pk).seen_reported_at is None  # neither was taken
    recovery.requeue_undelivered_assignments()  # a malformed seen_attempts once stopped this for the whole fleet


def test_a_heartbeat_that_re_registers_from_a_description_breaking_the_rules_is_refused_alone():
    live = make_worker()
    stranger = _description(customer_allowlist="x")

    apply_batch(
        [
            fleet_message(
                names.HEARTBEAT_TASK,
                live.id,
                live.instance_id,
                {"telemetry": {"n": 1}},
                key=worker_key(live.id),
            ),
            fleet_message(
                names.HEARTBEAT_TASK,
                stranger["worker_id"],
                "i-1",
                stranger,
                key=worker_key(stranger["worker_id"]),
            ),
        ]
    )

    assert not Worker.objects.filter(pk=stranger["worker_id"]).exists()
    assert Worker.objects.get(pk=live.pk).telemetry == {"n": 1}


def _refusals() -> dict[str, int]:
    from dispatch import refusals

    return refusals.counts()


def test_a_report_without_its_attempts_lease_changes_nothing_and_is_counted():
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    older = _refusals().get("report_lease_mismatch", 0)
    forged = [
        report(names.REPORT_SUCCEEDED_TASK, job, {"forged": True}, 1, lease=str(uuid.uuid4())),
        report(names.REPORT_FAILED_TASK, job, {"code": "X", "class": "permanent"}, 1, lease=""),
        TaskMessage(names.REPORT_CANCELLED_TASK, (str(job.pk), job.attempt, 1), {}),  # no lease at all
        report(names.REPORT_STARTED_TASK, job, worker.id, 0, lease="not-a-uuid"),
    ]

    apply_batch(forged)

    job.refresh_from_db()
    assert (job.status, job.result, job.started_at) == (JobStatus.ASSIGNED, None, None)
    assert _refusals()["report_lease_mismatch"] == older + 4
    # Nor did the forgeries raise the attempt's stop flag (a confirmation), which would stop the real run.
    assert redis_client().get(names.cancel_flag_key(worker.id, str(job.pk))) is None

    apply_batch([_succeeded(job)])  # the worker's own report, with the lease it received
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def test_a_lease_belongs_to_one_attempt_of_one_job():
    first, second = make_job(), make_job()
    worker = make_worker(slots=2)
    fill_worker(worker.id)

    apply_batch(
        [
            report(names.REPORT_SUCCEEDED_TASK, first, {}, 1, lease=lease_of(second)),
            report(names.REPORT_SUCCEEDED_TASK, second, {}, 1, attempt=2, lease=lease_of(second)),
        ]
    )

    assert set(Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        JobStatus.ASSIGNED
    }


def test_fleet_messages_without_the_named_workers_key_change_nothing():
    victim, rogue = make_worker(), make_worker()
    job = make_job()
    fill_worker(victim.id)
    long_ago = timezone.now() - timedelta(minutes=10)
    Worker.objects.filter(pk=victim.pk).update(last_seen_at=long_ago)
    before = Worker.objects.get(pk=victim.pk)
    worker_key(victim.id)
    rogue_key = worker_key(rogue.id)
    hijack = {**_description(), "worker_id": victim.id, "instance_id": "hijacked"}

    apply_batch(
        [
            fleet_message(names.HEARTBEAT_TASK, victim.id, victim.instance_id, {}, key=rogue_key),
            fleet_message(names.REGISTER_WORKER_TASK, hijack, key=rogue_key),
            fleet_message(names.DEREGISTER_WORKER_TASK, victim.id, victim.instance_id, key=None),
            TaskMessage(names.HEARTBEAT_TASK, (victim.id, "another-instance", hijack), {}),
        ]
    )

    after = Worker.objects.get(pk=victim.pk)
    assert (after.instance_id, after.last_seen_at, after.status) == (
        before.instance_id,
        long_ago,
        before.status,
    )
    assert Job.objects.get(pk=job.pk).status == JobStatus.ASSIGNED  # its attempt was not failed as lost
    assert _refusals()["fleet_key_mismatch"] >= 4


def test_a_registration_beyond_its_credential_is_refused():
    heavy, dedicated = _description(pool="heavy"), _description(customer_allowlist=["acme", "globex"])
    heavy_key = worker_key(heavy["worker_id"], pool="standard")
    dedicated_key = worker_key(dedicated["worker_id"], customers=("acme",))
    unrestricted = _description(customer_allowlist=[])
    unrestricted_key = worker_key(unrestricted["worker_id"], customers=("acme",))

    apply_batch(
        [
            fleet_message(names.REGISTER_WORKER_TASK, heavy, key=heavy_key),
            fleet_message(names.REGISTER_WORKER_TASK, dedicated, key=dedicated_key),
            fleet_message(names.REGISTER_WORKER_TASK, unrestricted, key=unrestricted_key),
        ]
    )

    registered = [heavy["worker_id"], dedicated["worker_id"], unrestricted["worker_id"]]
    assert not Worker.objects.filter(pk__in=registered).exists()


def test_a_heartbeat_that_waited_in_the_lane_does_not_make_a_received_attempt_look_undelivered(settings):
    from dispatch.recovery import requeue_undelivered_assignments

    settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS = 3
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    Job.objects.filter(pk=job.pk).update(assigned_at=timezone.now() - timedelta(seconds=10))
    key = worker_key(worker.id)

    def beat(sent_seconds_ago: float) -> TaskMessage:
        info = {"seen_attempts": [], "sent_at": time.time() - sent_seconds_ago}
        return fleet_message(names.HEARTBEAT_TASK, worker.id, worker.instance_id, info, key=key)

    apply_batch([beat(20)])  # sent before the assignment, applied only now: it says nothing of it
    assert requeue_undelivered_assignments() == 0
    apply_batch([beat(0)])  # sent now, well after the assignment, and still without it: undelivered
    assert requeue_undelivered_assignments() == 1


def test_a_heartbeat_cannot_register_its_worker_again_beyond_its_credential():
    live = make_worker()
    heavy = {**_description(pool="heavy"), "worker_id": live.id, "instance_id": "another-instance"}
    key = worker_key(live.id, pool="standard")

    apply_batch([fleet_message(names.HEARTBEAT_TASK, live.id, "another-instance", heavy, key=key)])

    worker = Worker.objects.get(pk=live.pk)
    assert (worker.instance_id, worker.pool) == (live.instance_id, "standard")
