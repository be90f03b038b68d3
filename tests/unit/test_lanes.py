"""The control plane's lanes: job reports, the fleet's heartbeats and beat's sweeps travel apart."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from gpu_worker.reporter import Reporter
from tests.envelopes import envelope
from wire import edge, fleet, names, reports


class RecordingApp:
    """Stands in for the GPU worker's Celery app: records what would be published where."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], str]] = []

    def send_task(self, name: str, args: Any = (), queue: str = "", **options: Any) -> None:
        assert options["declare"] == []  # a worker's broker user may push to its lanes, not declare them
        assert args == ()  # every field is named
        self.sent.append((name, queue, options["kwargs"], options["kwargsrepr"]))


def _description() -> fleet.Description:
    return fleet.Description(worker_id="gpu0", instance_id="instance", machine_id="m1")


def test_a_gpu_worker_reports_on_its_own_lanes_jobs_with_their_lease_and_itself_by_name():
    app = RecordingApp()
    reporter = Reporter(app, "gpu0")  # type: ignore[arg-type]
    reporter.register(_description())
    reporter.heartbeat(fleet.Heartbeat(instance_id="instance"))
    reporter.started("job", 1, "the-lease")
    reporter.succeeded("job", 1, "the-lease", {"ok": True})
    reporter.deregister("instance")
    sent = [(name, queue) for name, queue, _, _ in app.sent]
    assert sent == [
        (names.REGISTER_WORKER_TASK, "fleet.gpu0"),
        (names.HEARTBEAT_TASK, "fleet.gpu0"),
        (names.REPORT_STARTED_TASK, "control.gpu0"),
        (names.REPORT_SUCCEEDED_TASK, "control.gpu0"),
        (names.DEREGISTER_WORKER_TASK, "fleet.gpu0"),
    ]
    assert app.sent[2][2] == {"job_id": "job", "attempt": 1, "lease": "the-lease", "running_for_ms": 0}


def test_a_reports_lease_never_shows_in_its_headers():
    app = RecordingApp()
    Reporter(app, "gpu0").succeeded("job", 1, "the-lease", {"ok": True})  # type: ignore[arg-type]
    kwargsrepr = app.sent[0][3]
    assert "the-lease" not in kwargsrepr and "'lease': '***'" in kwargsrepr


def test_what_a_worker_sends_decodes_at_the_edge_as_it_was_built():
    app = RecordingApp()
    reporter = Reporter(app, "gpu0")  # type: ignore[arg-type]
    reporter.failed("job", 2, "lease", {"code": "OOM", "message": "out of memory", "class": "permanent"})
    name, _queue, kwargs, _ = app.sent[0]
    decoded = edge.decode(envelope(name, kwargs), names.CONTROL_LANE, "gpu0")
    assert decoded.refusal is None
    assert decoded.message == reports.Failed(
        job_id="job",
        attempt=2,
        lease="lease",
        error=reports.AttemptError(code="OOM", message="out of memory", error_class="permanent"),
    )


def test_every_sweep_runs_on_the_sweeps_lane():
    assert {entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == {
        settings.SWEEPS_QUEUE
    }


def test_every_lane_has_consumers():
    assert set(settings.CONTROL_PLANE_LANES) == {
        names.CONTROL_LANE,
        names.FLEET_LANE,
        settings.SWEEPS_QUEUE,
    }
    assert all(concurrency >= 1 for concurrency in settings.CONTROL_PLANE_LANES.values())
