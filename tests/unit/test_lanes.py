"""The control plane's lanes: job reports, the fleet's heartbeats and beat's sweeps travel apart."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from gpu_worker.reporter import Reporter
from wire import names


class RecordingApp:
    """Stands in for the GPU worker's Celery app: records what would be published where."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = (), queue: str = "", **options: Any) -> None:
        assert options["declare"] == []  # a worker's broker user may push to the lanes, not declare them
        self.sent.append((name, queue, options["kwargs"]))


def test_a_gpu_worker_reports_jobs_with_their_lease_on_the_control_lane_and_itself_with_its_key_on_the_fleet_lane():
    app = RecordingApp()
    reporter = Reporter(app, "gpu0", "the-key")  # type: ignore[arg-type]
    reporter.register({"worker_id": "gpu0"})
    reporter.heartbeat("instance", {})
    reporter.started("job", 1, "the-lease")
    reporter.succeeded("job", 1, "the-lease", {"ok": True})
    reporter.deregister("instance")
    key, lease = {names.WORKER_KEY_ARG: "the-key"}, {names.LEASE_ARG: "the-lease"}
    assert app.sent == [
        (names.REGISTER_WORKER_TASK, names.FLEET_LANE, key),
        (names.HEARTBEAT_TASK, names.FLEET_LANE, key),
        (names.REPORT_STARTED_TASK, names.CONTROL_LANE, lease),
        (names.REPORT_SUCCEEDED_TASK, names.CONTROL_LANE, lease),
        (names.DEREGISTER_WORKER_TASK, names.FLEET_LANE, key),
    ]


def test_every_sweep_runs_on_the_sweeps_lane():
    assert {entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == {
        settings.SWEEPS_QUEUE
    }


def test_the_control_planes_own_publishes_of_fleet_tasks_take_the_fleet_lane():
    from settings.celery import app

    for task in (names.REGISTER_WORKER_TASK, names.HEARTBEAT_TASK, names.DEREGISTER_WORKER_TASK):
        assert app.amqp.router.route({}, task)["queue"].name == names.FLEET_LANE
    assert app.amqp.router.route({}, names.REPORT_SUCCEEDED_TASK)["queue"].name == names.CONTROL_LANE


def test_every_lane_has_consumers():
    assert set(settings.CONTROL_PLANE_LANES) == {
        names.CONTROL_LANE,
        names.FLEET_LANE,
        settings.SWEEPS_QUEUE,
    }
    assert all(concurrency >= 1 for concurrency in settings.CONTROL_PLANE_LANES.values())
