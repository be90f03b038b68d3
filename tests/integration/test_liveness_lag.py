"""A slow fleet lane never makes a live worker look silent: silence is judged against the lane's
measured lag (`machines.lane_lag`), which the fleet lane records from its heartbeats' send times."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from core.redis import redis_client
from machines import lane_lag
from machines.models import Worker, WorkerStatus
from machines.registry import mark_silent_workers_offline
from tests.factories import delivered, from_lane, make_worker
from wire import names

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_recorded_lag(monkeypatch):
    redis_client().delete(lane_lag.KEY)
    monkeypatch.setattr(lane_lag, "_cached", (0.0, 0.0))
    monkeypatch.setattr(lane_lag, "READ_EVERY_S", 0.0)  # every look reads the broker
    yield
    redis_client().delete(lane_lag.KEY)


def _last_heard(seconds_ago: float) -> Worker:
    worker = make_worker()
    Worker.objects.filter(pk=worker.pk).update(last_seen_at=timezone.now() - timedelta(seconds=seconds_ago))
    return worker


def test_a_worker_whose_heartbeats_wait_in_a_lagging_lane_is_not_taken_for_silent(settings):
    settings.WORKER_OFFLINE_AFTER_SECONDS = 30
    waiting, gone = _last_heard(40), _last_heard(70)
    lane_lag.record([24.0, 25.0, 26.0])  # the lane applies heartbeats 25 s after they were sent

    assert mark_silent_workers_offline() == 1
    assert Worker.objects.get(pk=waiting.pk).is_live
    assert Worker.objects.get(pk=gone.pk).status == WorkerStatus.OFFLINE


def test_without_lag_the_same_silence_is_offline(settings):
    settings.WORKER_OFFLINE_AFTER_SECONDS = 30
    worker = _last_heard(40)

    assert mark_silent_workers_offline() == 1
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.OFFLINE


def test_the_allowance_for_lag_is_bounded(settings):
    settings.WORKER_OFFLINE_AFTER_SECONDS, settings.WORKER_OFFLINE_LAG_ALLOWANCE_MAX_SECONDS = 30, 10
    worker = _last_heard(45)
    lane_lag.record([3600.0])  # a clock an hour slow must not keep dead workers live

    assert lane_lag.allowance() == 10
    assert mark_silent_workers_offline() == 1
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.OFFLINE


def test_the_fleet_lane_records_how_long_its_heartbeats_waited():
    worker = make_worker()
    beat = names.HEARTBEAT_TASK
    delivered([from_lane(worker.id, beat, instance_id=worker.instance_id, sent_at=time.time() - 12)])

    assert 12 <= lane_lag.allowance() < 20
