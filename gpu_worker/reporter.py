"""Lifecycle reports from a GPU worker to the control plane, sent as Celery tasks: job reports on the
control queue, registration and heartbeats on the fleet queue."""

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
    def __init__(self, app: Celery, worker_id: str) -> None:
        self.app = app
        self.worker_id = worker_id
        self._last_progress: dict[str, float] = {}
        self._lock = threading.Lock()

    def _send(self, task: str, *args: Any, queue: str = protocol.CONTROL_QUEUE) -> None:
        self.app.send_task(task, args=args, queue=queue, retry=True, retry_policy=REPORT_RETRY_POLICY)

    def started(self, job_id: str, attempt: int, running_for_ms: int = 0) -> None:
        self._send(protocol.REPORT_STARTED_TASK, job_id, attempt, self.worker_id, running_for_ms)

    def progress(self, job_id: str, attempt: int, progress: int, stage: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            if progress < 100 and now - self._last_progress.get(job_id, 0.0) < PROGRESS_MIN_INTERVAL_S:
                return
            self._last_progress[job_id] = now
        self._send(protocol.REPORT_PROGRESS_TASK, job_id, attempt, progress, stage)

    # `runtime_ms` (measured on the worker's monotonic clock) lets the control plane date the start
    # of a job that finished before its `started` report was due.
    def succeeded(self, job_id: str, attempt: int, result: Any, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._send(protocol.REPORT_SUCCEEDED_TASK, job_id, attempt, result, runtime_ms)

    def failed(self, job_id: str, attempt: int, error: dict[str, Any], runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._send(protocol.REPORT_FAILED_TASK, job_id, attempt, error, runtime_ms)

    def cancelled(self, job_id: str, attempt: int, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._send(protocol.REPORT_CANCELLED_TASK, job_id, attempt, runtime_ms)

    def handed_back(self, job_id: str, attempt: int, runtime_ms: int | None = None) -> None:
        self._forget(job_id)
        self._send(protocol.REPORT_HANDED_BACK_TASK, job_id, attempt, runtime_ms)

    def register(self, info: dict[str, Any]) -> None:
        self._send(protocol.REGISTER_WORKER_TASK, info, queue=protocol.FLEET_QUEUE)

    def heartbeat(self, instance_id: str, info: dict[str, Any]) -> None:
        self._send(protocol.HEARTBEAT_TASK, self.worker_id, instance_id, info, queue=protocol.FLEET_QUEUE)

    def deregister(self, instance_id: str) -> None:
        self._send(protocol.DEREGISTER_WORKER_TASK, self.worker_id, instance_id, queue=protocol.FLEET_QUEUE)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
