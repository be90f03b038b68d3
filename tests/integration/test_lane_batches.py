"""GPU workers' messages applied in batches (`dispatch/lane_batches.py`), directly and through the batch
consumer on the real broker (`core/batch_consumer.py`): what an honest worker's messages do, and what
a rented host with its own valid credential cannot do with them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from core.batch_consumer import _TAKE_BATCH, DEAD_LETTERS_KEY, BatchConsumer
from core.redis import redis_client
from dispatch import refusals, worker_reports
from dispatch.assignment import fill_worker
from dispatch.lane_batches import apply_batch
from events.models import Event
from jobqueue.models import Job, JobStatus
from machines import credentials
from machines.models import Worker, WorkerCredential, WorkerStatus
from tests.conftest import wait_for
from tests.envelopes import envelope
from tests.factories import (
    credential_for,
    delivered,
    from_lane,
    lease_of,
    make_job,
    make_worker,
    report,
)
from wire import names

# A broker of the module's tests' own: a lane consumer another test left running on the shared one
# (the session's control worker) would take their messages first.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_broker")]


def _succeeded(job: Job, **overrides: object) -> object:
    return report(names.REPORT_SUCCEEDED_TASK, job, result={"ok": True}, runtime_ms=10, **overrides)


def _assigned(worker: Worker) -> list[Job]:
    return list(Job.objects.filter(worker_id=worker.id, status=JobStatus.ASSIGNED).order_by("submit_seq"))


def _description(worker_id: str | None = None, **fields: object) -> dict:
    return {
        "worker_id": worker_id or f"unit-{uuid.uuid4().hex[:8]}",
        "instance_id": "i-1",
        "machine_id": "unit-machine",
        "job_types": ["simulation"],
        **fields,
    }


def _refused(reason: str) -> int:
    return refusals.counts().get(reason, 0)


def _refused_from(sender: str) -> int:
    return refusals.by_sender().get(sender, 0)


# --- applying batches ---------------------------------------------------------------------------------


def test_a_batch_of_reports_ends_each_attempt_once_and_refills_the_freed_slots():
    jobs = [make_job() for _ in range(4)]
    worker = make_worker(slots=2)
    fill_worker(worker.id)
    first = _assigned(worker)
    assert len(first) == 2

    started = report(names.REPORT_STARTED_TASK, first[0], running_for_ms=5)
    progress = [report(names.REPORT_PROGRESS_TASK, first[0], progress=p, stage=f"step {p}") for p in (20, 60)]
    stale = report(
        names.REPORT_SUCCEEDED_TASK, first[1], attempt=first[1].attempt + 7, lease=lease_of(first[1])
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
    credential_for(newcomer)
    description = _description(newcomer, instance_id="new-instance")
    beat = names.HEARTBEAT_TASK
    apply_batch(
        [
            from_lane(live.id, beat, instance_id=live.instance_id, telemetry={"n": 1}),
            from_lane(live.id, beat, instance_id=live.instance_id, telemetry={"n": 2}),
            from_lane(silent.id, beat, instance_id=silent.instance_id, seen_attempts=[]),
            from_lane(newcomer, beat, instance_id="new-instance", description=description),
        ]
    )

    refreshed = Worker.objects.get(pk=live.pk)
    assert refreshed.last_seen_at > long_ago and refreshed.telemetry == {"n": 2}  # the latest one counts
    back = Worker.objects.get(pk=silent.pk)
    assert back.status == WorkerStatus.IDLE and back.seen_reported_at is not None
    changes = Event.objects.filter(type="worker_status_changed", worker_id=silent.id)
    assert [(e.payload["from"], e.payload["to"]) for e in changes] == [("offline", "idle")]
    assert Worker.objects.get(pk=newcomer).instance_id == "new-instance"  # re-registered from its beat


def test_a_started_report_names_its_sender_as_the_worker_whatever_it_carries():
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)

    apply_batch([report(names.REPORT_STARTED_TASK, job)])

    started = Event.objects.get(job_id=job.pk, type="job_started")
    assert started.worker_id == worker.id
    forged = report(names.REPORT_STARTED_TASK, job, worker_id="x" * 10_000)  # no such field on the wire
    assert forged.refusal == "invalid"


def test_a_heartbeat_that_waited_in_the_lane_does_not_make_a_received_attempt_look_undelivered(settings):
    from dispatch.recovery import requeue_undelivered_assignments

    settings.ASSIGNMENT_DELIVERY_GRACE_SECONDS = 3
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    Job.objects.filter(pk=job.pk).update(assigned_at=timezone.now() - timedelta(seconds=10))

    def beat(sent_seconds_ago: float) -> object:
        return from_lane(
            worker.id,
            names.HEARTBEAT_TASK,
            instance_id=worker.instance_id,
            seen_attempts=[],
            sent_at=time.time() - sent_seconds_ago,
        )

    apply_batch([beat(20)])  # sent before the assignment, applied only now: it says nothing of it
    assert requeue_undelivered_assignments() == 0
    apply_batch([beat(0)])  # sent now, well after the assignment, and still without it: undelivered
    assert requeue_undelivered_assignments() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_allowlist": "x"},  # a string where a list belongs broke every dispatch
        {"job_types": "simulation"},
        {"slots": 0},
        {"slots": "many"},
        {"gpu_memory_gb": "lots"},
        {"pool": ""},
        {"capabilities": ["x" * 1000]},
        {"machine": {"blob": "x" * 100_000}},
    ],
)
def test_a_registration_that_breaks_the_rules_is_refused_and_the_fleet_dispatches_as_before(bad):
    good, refused = _description(), _description(**bad)
    for description in (good, refused):
        credential_for(description["worker_id"])
    job = make_job()
    before = _refused("invalid")

    delivered(
        [
            from_lane(refused["worker_id"], names.REGISTER_WORKER_TASK, description=refused),
            from_lane(good["worker_id"], names.REGISTER_WORKER_TASK, description=good),
        ]
    )

    assert not Worker.objects.filter(pk=refused["worker_id"]).exists()
    assert _refused("invalid") == before + 1
    job.refresh_from_db()
    assert (job.status, job.worker_id) == (JobStatus.ASSIGNED, good["worker_id"])
    assert make_job().status == JobStatus.PENDING  # and the next submission's dispatch does not fail


def test_a_heartbeat_with_malformed_attempts_is_refused_and_recovery_still_runs():
    from dispatch import recovery

    worker = make_worker()
    beat = names.HEARTBEAT_TASK
    delivered(
        [
            from_lane(worker.id, beat, instance_id=worker.instance_id, seen_attempts="all"),
            from_lane(worker.id, beat, instance_id=worker.instance_id, seen_attempts=[[1, "x"]]),
            # a date Postgres cannot hold would fail the batch's statement
            from_lane(worker.id, beat, instance_id=worker.instance_id, seen_attempts=[], sent_at=1e300),
        ]
    )

    assert Worker.objects.get(pk=worker.pk).seen_reported_at is None  # none was taken
    assert _refused_from(worker.id) == 3
    recovery.requeue_undelivered_assignments()  # a malformed seen_attempts once stopped this for the whole fleet


# --- identity: a message acts only for the worker whose lane it came from ------------------------------


def test_a_heartbeat_naming_a_worker_without_a_credential_plants_no_ghost_and_nothing_is_assigned_to_it():
    sender = make_worker()
    ghost = _description(capabilities=["only-the-ghost-has-this"], instance_id="ghost-instance")
    job = make_job(capabilities=("only-the-ghost-has-this",))

    delivered(
        [
            from_lane(sender.id, names.HEARTBEAT_TASK, instance_id="ghost-instance", description=ghost),
            from_lane(sender.id, names.REGISTER_WORKER_TASK, description=ghost),
        ]
    )

    assert not Worker.objects.filter(pk=ghost["worker_id"]).exists()
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    assert _refused_from(sender.id) == 2
    assert Worker.objects.get(pk=sender.pk).instance_id == sender.instance_id  # the sender is unchanged


def test_a_description_naming_another_worker_or_machine_is_refused_and_counted_against_the_sender():
    victim, rogue = make_worker(), make_worker()
    job = make_job()
    fill_worker(victim.id)
    credential_for(rogue.id, machine_id="rogue-machine")
    before = _refused("description_not_sender")
    hijack = _description(victim.id, instance_id="hijacked", machine_id="rogue-machine")
    elsewhere = _description(rogue.id, instance_id="elsewhere", machine_id="someone-elses-machine")

    delivered(
        [
            from_lane(rogue.id, names.REGISTER_WORKER_TASK, description=hijack),
            from_lane(rogue.id, names.HEARTBEAT_TASK, instance_id="hijacked", description=hijack),
            from_lane(rogue.id, names.REGISTER_WORKER_TASK, description=elsewhere),
        ]
    )

    assert Worker.objects.get(pk=victim.pk).instance_id == victim.instance_id
    assert Worker.objects.get(pk=rogue.pk).machine_id == "unit-machine"
    assert Job.objects.get(pk=job.pk).status == JobStatus.ASSIGNED  # its attempt was not failed as lost
    assert _refused("description_not_sender") == before + 3
    assert _refused_from(rogue.id) == 3 and _refused_from(victim.id) == 0


def test_a_fleet_message_from_a_worker_whose_credential_was_revoked_changes_nothing():
    worker = make_worker()
    long_ago = timezone.now() - timedelta(minutes=10)
    Worker.objects.filter(pk=worker.pk).update(last_seen_at=long_ago)
    WorkerCredential.objects.filter(pk=worker.id).update(revoked_at=timezone.now())
    before = _refused("no_credential")

    delivered([from_lane(worker.id, names.HEARTBEAT_TASK, instance_id=worker.instance_id)])

    assert Worker.objects.get(pk=worker.pk).last_seen_at == long_ago
    assert _refused("no_credential") == before + 1


def test_dispatch_never_chooses_a_worker_without_an_active_credential():
    revoked, active = make_worker(), make_worker()
    credentials.revoke(WorkerCredential.objects.get(pk=revoked.id))

    jobs = [make_job(), make_job()]

    holders = set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("worker_id", flat=True))
    assert holders == {active.id, None}
    fill_worker(revoked.id)
    assert not Job.objects.filter(worker_id=revoked.id).exists()


def test_a_worker_revoked_while_its_messages_were_applied_is_not_made_live_again():
    """The lane checks the sender's credential once per batch; a revocation that commits after that
    check still wins: nothing makes a worker live without its credential, under a lock."""
    from machines import registry

    worker = make_worker()
    credentials.revoke(WorkerCredential.objects.get(pk=worker.id))
    beat = registry.Beat(worker.id, worker.instance_id, {})

    assert worker_reports.heartbeats([beat]) == []  # not offered work
    description = _description(worker.id, instance_id="after-revocation")
    assert worker_reports.register_worker(description) is None

    worker.refresh_from_db()
    assert (worker.status, worker.instance_id) == (WorkerStatus.OFFLINE, beat.instance_id)
    make_job()
    assert fill_worker(worker.id) == []


def test_a_report_without_a_lease_of_its_senders_attempt_changes_nothing_and_is_counted():
    job = make_job()
    worker, rogue = make_worker(), make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    older = _refused("report_lease_mismatch")
    forged = [
        report(names.REPORT_SUCCEEDED_TASK, job, result={"forged": True}, lease=str(uuid.uuid4())),
        report(
            names.REPORT_FAILED_TASK, job, error={"code": "X", "message": "", "class": "permanent"}, lease=""
        ),
        report(names.REPORT_STARTED_TASK, job, lease="not-a-uuid"),
        report(names.REPORT_SUCCEEDED_TASK, job, sender=rogue.id),  # the right lease, from another worker
    ]

    apply_batch(forged)

    job.refresh_from_db()
    assert (job.status, job.result, job.started_at) == (JobStatus.ASSIGNED, None, None)
    assert _refused("report_lease_mismatch") == older + 4
    assert _refused_from(rogue.id) == 1
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
            report(names.REPORT_SUCCEEDED_TASK, first, lease=lease_of(second)),
            report(names.REPORT_SUCCEEDED_TASK, second, attempt=2, lease=lease_of(second)),
        ]
    )

    assert set(Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        JobStatus.ASSIGNED
    }


def test_a_registration_beyond_its_credential_is_refused():
    heavy, dedicated = _description(pool="heavy"), _description(customer_allowlist=["acme", "globex"])
    unrestricted = _description(customer_allowlist=[])
    credential_for(heavy["worker_id"], pool="standard")
    credential_for(dedicated["worker_id"], customers=("acme",))
    credential_for(unrestricted["worker_id"], customers=("acme",))

    delivered(
        [
            from_lane(d["worker_id"], names.REGISTER_WORKER_TASK, description=d)
            for d in (heavy, dedicated, unrestricted)
        ]
    )

    registered = [heavy["worker_id"], dedicated["worker_id"], unrestricted["worker_id"]]
    assert not Worker.objects.filter(pk__in=registered).exists()


def test_a_heartbeat_cannot_register_its_worker_again_beyond_its_credential():
    live = make_worker()
    heavy = _description(live.id, pool="heavy", instance_id="another-instance")
    credential_for(live.id, pool="standard")

    delivered([from_lane(live.id, names.HEARTBEAT_TASK, instance_id="another-instance", description=heavy)])

    worker = Worker.objects.get(pk=live.pk)
    assert (worker.instance_id, worker.pool) == (live.instance_id, "standard")


# --- the consumer on the real broker -----------------------------------------------------------------


def _push(sender: str, *raw: bytes, lane: str = names.CONTROL_LANE) -> None:
    """Messages on `sender`'s own lane, as its broker user alone may put them there."""
    redis_client().lpush(names.lane_list(lane, sender), *raw)


def _consumer(senders: list[str], apply: Callable = apply_batch, **options: object) -> BatchConsumer:
    return BatchConsumer(
        names.LANES, apply, senders=lambda: senders, refuse=refusals.record, **{"linger_s": 0.05, **options}
    )


def _consume_until(consumer: BatchConsumer, done: Callable[[], object], what: str = "the batch") -> None:
    def consume() -> None:
        try:
            consumer.run()
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        wait_for(done, what=what)
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()


def _raw(job: Job, task: str = names.REPORT_SUCCEEDED_TASK, **fields: object) -> bytes:
    """The report of the job's current attempt as its worker's Celery app puts it on the lane."""
    return envelope(task, {"job_id": str(job.pk), "attempt": job.attempt, "lease": lease_of(job), **fields})


def _crash_after_taking(worker_id: str) -> int:
    """A consumer takes what `worker_id`'s lanes hold and dies before acknowledging it."""
    crashing = _consumer([worker_id])
    crashing._lists.all_senders([worker_id])
    return len(crashing._take(redis_client().register_script(_TAKE_BATCH), 10))


def _restore_expired() -> None:
    with _consumer([])._kombu_channel() as channel:
        channel.qos.restore_visible(num=10, interval=1)


def test_messages_that_cannot_be_read_or_applied_are_refused_alone_and_the_rest_of_their_batch_applied():
    jobs = [make_job() for _ in range(2)]
    worker = make_worker(slots=2)
    fill_worker(worker.id)
    first, second = (Job.objects.get(pk=job.pk) for job in jobs)
    poison = str(uuid.uuid4())
    deep = b"[" * 100_000 + b"]" * 100_000

    def apply_but_choke_on_poison(batch):
        if any(getattr(d.message, "job_id", None) == poison for d in batch):
            raise RecursionError("a bug somewhere down the line")
        apply_batch(batch)

    poisoned = envelope(names.REPORT_SUCCEEDED_TASK, {"job_id": poison, "attempt": 1, "lease": "x"})
    _push(worker.id, _raw(first), poisoned, deep, b"\xff not even JSON", _raw(second))
    before = _refused_from(worker.id)
    consumer = _consumer([worker.id], apply_but_choke_on_poison, linger_s=0.5)

    _consume_until(consumer, lambda: consumer.stats.messages + consumer.stats.refused >= 5)

    assert set(Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        JobStatus.COMPLETED
    }
    assert consumer.stats.refused == 3 and _refused_from(worker.id) == before + 3
    dead = refusals.dead_letters()
    assert dead[0]["list"] == names.lane_list(names.CONTROL_LANE, worker.id) and poison in dead[0]["message"]
    assert "'lease': '***'" in dead[0]["message"]
    assert redis_client().llen(names.lane_list(names.CONTROL_LANE, worker.id)) == 0
    unacked = redis_client().hvals("unacked:control")
    assert not any(worker.id.encode() in entry for entry in unacked)  # nothing comes back


def test_a_message_above_the_size_bound_is_refused_before_it_is_decoded(settings):
    settings.LANE_MAX_MESSAGE_BYTES = 64 * 1024
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    huge = envelope(names.REPORT_SUCCEEDED_TASK, {"result": "x" * (1024 * 1024)})
    _push(worker.id, huge, _raw(job))
    before = _refused("oversized")
    consumer = _consumer([worker.id])

    _consume_until(consumer, lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED)

    assert _refused("oversized") == before + 1


def test_a_flooding_worker_fills_only_its_own_lane_and_delays_no_one_elses_report(settings):
    settings.LANE_SENDER_SHARE, settings.LANE_MAX_WAITING_PER_SENDER = 20, 2000
    job = make_job()
    honest, flooder = make_worker(), make_worker()
    fill_worker(honest.id)
    job.refresh_from_db()
    _push(flooder.id, *[b"junk"] * 3000)
    _push(honest.id, _raw(job))
    flooded = names.lane_list(names.CONTROL_LANE, flooder.id)
    when_applied: dict[str, int] = {}

    def apply_noting_the_flood(batch):
        if batch and not when_applied:
            when_applied.update(batches=consumer.stats.batches, flood=redis_client().llen(flooded))
        apply_batch(batch)

    consumer = _consumer([flooder.id, honest.id], apply_noting_the_flood, batch_max=100)

    _consume_until(consumer, lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED)

    # Applied in the first batch while the flood still waited, cut to what its lane may hold (the
    # rest counted against the flooder, none against the honest worker).
    assert when_applied["batches"] == 0 and when_applied["flood"] >= 1900
    assert _refused_from(honest.id) == 0 and _refused_from(flooder.id) >= 1000


def test_a_message_restored_after_its_consumer_died_goes_back_to_the_lane_it_came_from(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 1,
    }
    job = make_job()
    worker, victim = make_worker(), make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    # The envelope claims it was meant for another worker's queue; kombu's restore would follow it.
    claimed = (
        b'"delivery_info": {"exchange": "", "routing_key": "%s"}' % names.worker_queue(victim.id).encode()
    )
    _push(worker.id, _raw(job).replace(b'"delivery_info": {}', claimed))
    assert _crash_after_taking(worker.id) == 1

    _consume_until(_consumer([worker.id]), lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED)

    assert redis_client().llen(names.worker_queue(victim.id)) == 0


def test_a_message_that_keeps_killing_its_consumer_goes_to_the_dead_letters(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 1,
    }
    settings.LANE_MAX_DELIVERIES = 2
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    _push(worker.id, _raw(job))
    before = _refused("redelivered_too_often")
    for _ in range(2):
        assert _crash_after_taking(worker.id) == 1
        time.sleep(1.1)
        _restore_expired()

    _consume_until(_consumer([worker.id]), lambda: _refused("redelivered_too_often") == before + 1)

    assert Job.objects.get(pk=job.pk).status == JobStatus.ASSIGNED  # never applied
    assert redis_client().llen(names.lane_list(names.CONTROL_LANE, worker.id)) == 0
    assert refusals.dead_letters()[0]["reason"] == "redelivered"
    assert redis_client().llen(DEAD_LETTERS_KEY) >= 1


def test_a_batch_that_meets_an_unreachable_database_is_retried_until_it_applies(monkeypatch):
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    _push(worker.id, _raw(job))
    outages = iter([True, True])

    def flaky_apply(batch):
        from django.db import OperationalError

        if next(outages, False):
            raise OperationalError("connection refused")
        apply_batch(batch)

    monkeypatch.setattr("core.batch_consumer.RECONNECT_BACKOFF_S", 0.01)
    consumer = _consumer([worker.id], flaky_apply, linger_s=0.01)

    _consume_until(consumer, lambda: consumer.stats.messages >= 1)

    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert consumer.stats.retried == 2 and consumer.stats.refused == 0


def test_a_message_pushed_by_a_worker_not_yet_known_is_taken_when_the_broker_announces_it():
    job = make_job()
    worker = make_worker()
    fill_worker(worker.id)
    job.refresh_from_db()
    consumer = _consumer([])  # it knows no sender: only the announcement can lead it to the lane
    report_raw = _raw(job)

    def push_later() -> None:
        wait_for(consumer.listening.is_set, what="the consumer")
        _push(worker.id, report_raw)

    threading.Thread(target=push_later).start()
    _consume_until(consumer, lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED)
