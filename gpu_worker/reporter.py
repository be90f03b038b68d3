"""Lifecycle reports from a GPU worker to the control plane, built from the wire contract's types
(`wire/`) and sent as Celery task messages to this worker's own lanes: job reports to its control
lane, registration and heartbeats to its fleet lane. Only this worker's broker user may write to
them, so the lane proves the sender; each job report also carries its attempt's lease token."""

from __future__ import annotations

import threading
import time

import msgspec
from celery import Celery

from wire import edge, fleet, names, reports
from wire.json_types import JsonObject, JsonValue
from wire.reports import normalise_error

PROGRESS_MIN_INTERVAL_S = 0.5  # at most two progress reports per second per job
# A report is the only record of what the GPU did: while the broker is away, keep trying (a worker
# without a broker can do nothing else useful anyway).
REPORT_RETRY_POLICY = {"max_retries": None, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 5}


class Reporter:
    def __init__(self, app: Celery, worker_id: str) -> None:
        self.app = app
        self.worker_id = worker_id
        self._last_progress: dict[str, float] = {}
        self._lock = threading.Lock()
        self._lanes = {lane: names.lane_list(lane, worker_id) for lane in names.LANES}

    def send(self, message: edge.Message) -> None:
        """Publish the message on its lane. `declare=[]`: the worker's broker user may push to its
        lanes, not declare them; the lease never shows in the message's headers."""
        lane = edge.KINDS[message.task][0]
        self.app.send_task(
            message.task,
            args=(),
            kwargs=edge.encode(message),
            kwargsrepr=edge.kwargs_repr(message),
            queue=self._lanes[lane],
            declare=[],
            retry=True,
            retry_policy=REPORT_RETRY_POLICY,
        )

    def started(self, job_id: str, attempt: int, lease: str, running_for_ms: int = 0) -> None:
        self.send(reports.Started(job_id=job_id, attempt=attempt, lease=lease, running_for_ms=running_for_ms))

    def progress(self, job_id: str, attempt: int, lease: str, progress: int, stage: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            if progress < 100 and now - self._last_progress.get(job_id, 0.0) < PROGRESS_MIN_INTERVAL_S:
                return
            self._last_progress[job_id] = now
        self.send(
            reports.Progress(
                job_id=job_id,
                attempt=attempt,
                lease=lease,
                progress=max(0, min(100, progress)),
                stage=stage[:200],
            )
        )

    # `runtime_ms` (measured on the worker's monotonic clock) lets the control plane date the start
    # of a job that finished before its `started` report was due.
    def succeeded(
        self, job_id: str, attempt: int, lease: str, result: JsonValue, runtime_ms: int | None = None
    ) -> None:
        self._forget(job_id)
        self.send(
            reports.Succeeded(
                job_id=job_id, attempt=attempt, lease=lease, result=result, runtime_ms=runtime_ms
            )
        )

    def failed(
        self, job_id: str, attempt: int, lease: str, error: JsonObject, runtime_ms: int | None = None
    ) -> None:
        self._forget(job_id)
        normalised = normalise_error(error)
        try:
            typed = msgspec.convert(normalised, reports.AttemptError)
        except msgspec.ValidationError:  # details the wire will not carry: the error goes without them
            typed = msgspec.convert({**normalised, "details": None}, reports.AttemptError)
        self.send(
            reports.Failed(job_id=job_id, attempt=attempt, lease=lease, error=typed, runtime_ms=runtime_ms)
        )

    def cancelled(self, job_id: str, attempt: int, lease: str, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self.send(reports.Cancelled(job_id=job_id, attempt=attempt, lease=lease, runtime_ms=runtime_ms))

    def handed_back(self, job_id: str, attempt: int, lease: str, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self.send(reports.HandedBack(job_id=job_id, attempt=attempt, lease=lease, runtime_ms=runtime_ms))

    def register(self, description: fleet.Description) -> None:
        self.send(fleet.Register(description=description))

    def heartbeat(self, beat: fleet.Heartbeat) -> None:
        self.send(beat)

    def deregister(self, instance_id: str) -> None:
        self.send(fleet.Deregister(instance_id=instance_id))

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
