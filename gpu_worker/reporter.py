"""Lifecycle reports from a GPU worker to the control plane, sent as Celery tasks: job reports on the
control queue, registration and heartbeats on the fleet queue. Each job report carries its attempt's
lease token and each fleet message the worker's key: the control plane ignores any that does not
(both lanes are shared by the fleet, and only the payload can say who wrote it)."""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery

from gpu_worker import protocol

PROGRESS_MIN_INTERVAL_S = 0.5  # at most two progress reports per second per job
# A report is the only record of what the GPU did: while the broker is away, keep trying (a worker
# without a broker can do nothing else useful anyway).
REPORT_RETRY_POLICY = {"max_retries": None, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 5}


class Reporter:
    def __init__(self, app: Celery, worker_id: str, worker_key: str = "") -> None:
        self.app = app
        self.worker_id = worker_id
        self._worker_key = worker_key
        self._last_progress: dict[str, float] = {}
        self._lock = threading.Lock()

    def _send(self, task: str, args: tuple[Any, ...], proof: dict[str, str], queue: str) -> None:
        # `declare=[]`: the worker's broker user may push to the lanes, not declare them.
        self.app.send_task(
            task,
            args=args,
            kwargs=proof,
            queue=queue,
            declare=[],
            retry=True,
            retry_policy=REPORT_RETRY_POLICY,
        )

    def _report(self, task: str, lease: str, *args: Any) -> None:
        self._send(task, args, {protocol.LEASE_ARG: lease}, protocol.CONTROL_QUEUE)

    def _fleet(self, task: str, *args: Any) -> None:
        self._send(task, args, {protocol.WORKER_KEY_ARG: self._worker_key}, protocol.FLEET_QUEUE)

    def started(self, job_id: str, attempt: int, lease: str, running_for_ms: int = 0) -> None:
        self._report(protocol.REPORT_STARTED_TASK, lease, job_id, attempt, self.worker_id, running_for_ms)

    def progress(self, job_id: str, attempt: int, lease: str, progress: int, stage: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            if progress < 100 and now - self._last_progress.get(job_id, 0.0) < PROGRESS_MIN_INTERVAL_S:
                return
            self._last_progress[job_id] = now
        self._report(protocol.REPORT_PROGRESS_TASK, lease, job_id, attempt, progress, stage)

    # `runtime_ms` (measured on the worker's monotonic clock) lets the control plane date the start
    # of a job that finished before its `started` report was due.
    def succeeded(
        self, job_id: str, attempt: int, lease: str, result: Any, runtime_ms: int | None = None
    ) -> None:
        self._forget(job_id)
        self._report(protocol.REPORT_SUCCEEDED_TASK, lease, job_id, attempt, result, runtime_ms)

    def failed(
        self, job_id: str, attempt: int, lease: str, error: dict[str, Any], runtime_ms: int | None = None
    ) -> None:
        self._forget(job_id)
        self._report(protocol.REPORT_FAILED_TASK, lease, job_id, attempt, error, runtime_ms)

    def cancelled(self, job_id: str, attempt: int, lease: str, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._report(protocol.REPORT_CANCELLED_TASK, lease, job_id, attempt, runtime_ms)

    def handed_back(self, job_id: str, attempt: int, lease: str, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._report(protocol.REPORT_HANDED_BACK_TASK, lease, job_id, attempt, runtime_ms)

    def register(self, info: dict[str, Any]) -> None:
        self._fleet(protocol.REGISTER_WORKER_TASK, info)

    def heartbeat(self, instance_id: str, info: dict[str, Any]) -> None:
        self._fleet(protocol.HEARTBEAT_TASK, self.worker_id, instance_id, info)

    def deregister(self, instance_id: str) -> None:
        self._fleet(protocol.DEREGISTER_WORKER_TASK, self.worker_id, instance_id)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
