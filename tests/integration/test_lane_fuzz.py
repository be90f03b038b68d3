"""The lanes under fire: valid envelopes from a valid credential carrying hostile bodies, sizes and kinds,
mixed with an honest worker's reports, through the real consumer on the real broker. The consumer never
dies, every hostile message is counted against the worker that sent it, every honest report is
applied (and only once)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connections
from hypothesis import HealthCheck, given
from hypothesis import settings as examples_of
from hypothesis import strategies as st

from core.batch_consumer import BatchConsumer
from core.redis import redis_client
from dispatch import refusals
from dispatch.assignment import fill_worker
from dispatch.lane_batches import apply_batch
from events.models import Event
from jobqueue.models import Job, JobStatus
from tests.conftest import wait_for
from tests.envelopes import envelope
from tests.factories import lease_of, make_job, make_worker
from wire import edge, names

# A broker of the module's tests' own: a lane consumer another test left running on the shared one
# (the session's control worker) would take their messages first.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_broker")]

MAX_BYTES = 4096  # the lane's size bound in this test: hostile messages are drawn on both sides of it
FIELDS = {"job_id", "attempt", "lease", "instance_id", "description"}  # every message needs one of these

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=40,
)
# Bodies no message kind accepts: not an object, or an object without any field a message requires.
hostile_fields = json_values.filter(lambda v: not isinstance(v, dict) or not FIELDS & set(v))
control_tasks = [t for t, (lane, _) in edge.KINDS.items() if lane == names.CONTROL_LANE]
fleet_tasks = [t for t, (lane, _) in edge.KINDS.items() if lane == names.FLEET_LANE]


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["body", "other-lane", "unknown", "deep", "bytes", "oversized", "positional"])
    )
    if kind == "body":
        return envelope(draw(st.sampled_from(control_tasks)), draw(hostile_fields))
    if kind == "other-lane":
        return envelope(draw(st.sampled_from(fleet_tasks)), {"instance_id": "i"})
    if kind == "unknown":
        return envelope(draw(st.sampled_from(["celery.ping", "", "jobqueue.report_succeeded2"])), {})
    if kind == "deep":
        depth = draw(st.integers(65, 50_000))
        return envelope(names.REPORT_SUCCEEDED_TASK, None)[:-1] + b"[" * depth + b"]" * depth
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200))
    if kind == "oversized":
        return envelope(
            names.REPORT_PROGRESS_TASK, {"stage": "x" * draw(st.integers(MAX_BYTES, 3 * MAX_BYTES))}
        )
    return envelope(names.REPORT_STARTED_TASK, {}, args=draw(st.lists(json_values, min_size=1, max_size=3)))


def _forged(job: Job) -> bytes:
    """A well-formed report about the honest worker's attempt, without its lease."""
    return envelope(
        names.REPORT_SUCCEEDED_TASK,
        {"job_id": str(job.pk), "attempt": job.attempt, "lease": str(uuid.uuid4()), "result": {"forged": 1}},
    )


def test_hostile_messages_are_each_refused_against_their_sender_and_honest_reports_all_applied(settings):
    settings.LANE_MAX_MESSAGE_BYTES = MAX_BYTES
    senders: list[str] = []
    consumer = BatchConsumer(
        names.LANES, apply_batch, senders=lambda: list(senders), refuse=refusals.record, linger_s=0.01
    )

    def consume() -> None:
        try:
            consumer.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        # Its senders are made as it runs: it learns of them from the broker's announcements.
        wait_for(consumer.listening.is_set, what="the consumer")
        _examples(senders)
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()


def _examples(senders: list[str]) -> None:
    @examples_of(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostiles=st.lists(hostile(), min_size=1, max_size=8), honest_count=st.integers(1, 3))
    def example(hostiles: list[bytes], honest_count: int) -> None:
        job_type = f"fuzz-{uuid.uuid4().hex[:8]}"  # this example's jobs go to this example's worker
        honest, rogue = make_worker(slots=3, job_types=(job_type,)), make_worker()
        senders.extend([honest.id, rogue.id])
        jobs = [make_job(type=job_type) for _ in range(honest_count)]
        fill_worker(honest.id)
        jobs = [Job.objects.get(pk=job.pk) for job in jobs]
        assert all(job.worker_id == honest.id for job in jobs)
        before = refusals.by_sender()
        attacks = [*hostiles, *(_forged(job) for job in jobs)]
        rogue_lane = names.lane_list(names.CONTROL_LANE, rogue.id)
        honest_lane = names.lane_list(names.CONTROL_LANE, honest.id)
        for index, job in enumerate(jobs):  # interleaved: attacks before, between and after
            redis_client().lpush(rogue_lane, *attacks[index::honest_count])
            report = {
                "job_id": str(job.pk),
                "attempt": job.attempt,
                "lease": lease_of(job),
                "result": {"n": index},
            }
            redis_client().lpush(honest_lane, envelope(names.REPORT_SUCCEEDED_TASK, report))

        wait_for(
            lambda: (
                refusals.by_sender().get(rogue.id, 0) - before.get(rogue.id, 0) >= len(attacks)
                and Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.COMPLETED).count()
                == len(jobs)
            ),
            what="every attack counted and every honest report applied",
        )
        assert refusals.by_sender().get(rogue.id, 0) - before.get(rogue.id, 0) == len(attacks)
        assert refusals.by_sender().get(honest.id, 0) == before.get(honest.id, 0)
        results = dict(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("id", "result"))
        assert [results[job.pk] for job in jobs] == [{"n": i} for i in range(len(jobs))]
        completions = Event.objects.filter(job_id__in=[j.pk for j in jobs], type="job_completed").count()
        assert completions == len(jobs)

    example()
