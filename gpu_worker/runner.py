"""Running one attempt of one job: check cancellation, run the connector, report the outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from gpu_worker import metrics
from gpu_worker.connectors.base import Connector, ConnectorError, JobCancelled, JobContext
from gpu_worker.reporter import Reporter
from gpu_worker.results import DEFAULT_RESULT_MAX_BYTES, ResultTooLarge, storable
from wire import logs, names
from wire.job_spec import JobSpec
from wire.json_types import JsonValue
from wire.reports import attempt_error

logger = logging.getLogger(__name__)

CANCEL_CHECK_INTERVAL_S = 0.5
STARTED_REPORT_DELAY_S = 0.2
# How long a finished attempt is still listed in heartbeats as received (see `AttemptLog`).
SEEN_MEMORY_S = 120.0
# A final report not confirmed this long after it was sent is sent again; for at most REPORT_RESEND_FOR_S.
REPORT_CONFIRM_AFTER_S = 10.0
REPORT_RESEND_FOR_S = 600.0
ABANDONED = "abandoned"  # the hard limit gave up on a job whose connector would not stop
HANDED_BACK = "handed_back"  # a stopping worker gave the job back unfinished


class CancelWatch:
    """Reads this worker's cancellation flags, which the control plane mirrors to the broker's Redis."""

    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self.client = client
        self.worker_id = worker_id

    def checker(self, job_id: str, attempt: int) -> Callable[[], bool]:
        last_check = 0.0
        cancelled = False

        def is_cancelled() -> bool:
            nonlocal last_check, cancelled
            now = time.monotonic()
            if not cancelled and now - last_check >= CANCEL_CHECK_INTERVAL_S:
                last_check = now
                cancelled = self.is_cancelled_now(job_id, attempt)
            return cancelled

        return is_cancelled

    def is_cancelled_now(self, job_id: str, attempt: int) -> bool:
        try:
            flag = self.client.get(names.cancel_flag_key(self.worker_id, job_id))
        except redis.RedisError:
            logger.warning("could not read the cancellation flag of job %s", job_id)
            return False
        return flag is not None and int(flag) >= attempt  # type: ignore[arg-type]  # a sync client


@dataclass
class _Attempt:
    finished_at: float | None = None  # time.monotonic()
    resend: Callable[[], None] | None = None  # its final report, until the control plane confirms it
    next_check: float = 0.0


class AttemptLog:
    """The attempts this worker received: running, or finished recently, with the final report of
    each until the control plane confirms it. Heartbeats list them, so the control plane can tell an
    assignment whose message never arrived (lost with a restarted broker) from one whose report is
    merely on its way; unconfirmed final reports are sent again, so none is lost with the broker."""

    def __init__(self, memory_s: float = SEEN_MEMORY_S) -> None:
        self.memory_s = memory_s
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, int], _Attempt] = {}

    def received(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self._attempts[(job_id, attempt)] = _Attempt()

    def finished(self, job_id: str, attempt: int, resend: Callable[[], None] | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._attempts.setdefault((job_id, attempt), _Attempt())
            if entry.finished_at is None:
                entry.finished_at = now
                entry.next_check = now + REPORT_CONFIRM_AFTER_S
            entry.resend = resend or entry.resend

    def seen(self) -> list[list[Any]]:
        now = time.monotonic()
        with self._lock:
            for key, entry in list(self._attempts.items()):
                if entry.finished_at is None:
                    continue
                forget_after = REPORT_RESEND_FOR_S if entry.resend is not None else self.memory_s
                if now - entry.finished_at > forget_after:
                    if entry.resend is not None:
                        logger.error("final report of job %s attempt %s never confirmed; giving up", *key)
                    del self._attempts[key]
            return [[job_id, attempt] for job_id, attempt in self._attempts]

    def unconfirmed_due(self) -> list[tuple[str, int, Callable[[], None]]]:
        now = time.monotonic()
        with self._lock:
            due = [(*key, e.resend) for key, e in self._attempts.items() if e.resend and e.next_check <= now]
            for job_id, attempt, _ in due:
                self._attempts[(job_id, attempt)].next_check = now + REPORT_CONFIRM_AFTER_S
            return due

    def confirmed(self, job_id: str, attempt: int) -> None:
        with self._lock:
            entry = self._attempts.get((job_id, attempt))
            if entry is not None:
                entry.resend = None


@dataclass
class JobRunner:
    connectors: dict[str, Connector]
    reporter: Reporter
    cancel_watch: CancelWatch
    # Jobs that finish sooner report start and outcome in one message (with their runtime), which
    # saves the control plane a message and a transaction per short job.
    started_report_delay_s: float = STARTED_REPORT_DELAY_S
    # Past its timeout a job gets this long to stop on its own (the soft limit) before the hard limit
    # gives up on it: the attempt is reported as timed out and `on_stuck_job` runs. A thread cannot be
    # killed, so the worker process must go (and be restarted by its supervisor), as Celery's
    # prefork pool does with a hard time limit.
    hard_timeout_grace_s: float = names.HARD_TIMEOUT_GRACE_SECONDS
    on_stuck_job: Callable[[str], None] | None = None
    result_max_bytes: int = DEFAULT_RESULT_MAX_BYTES
    attempts: AttemptLog = field(default_factory=AttemptLog)
    # Set when a shutting-down worker's grace period ends: running jobs stop (as if cancelled) and
    # are handed back to the control plane unfinished, for another worker.
    hand_back: threading.Event = field(default_factory=threading.Event)

    def run(self, spec: JobSpec) -> str:
        """Run one attempt; returns the outcome reported."""
        job_id, attempt = spec.job_id, spec.attempt
        self.attempts.received(job_id, attempt)
        try:
            return self._run(spec, job_id, attempt)
        finally:
            self.attempts.finished(job_id, attempt)

    def resend_unconfirmed_reports(self) -> int:
        """Send again each final report the control plane has not confirmed (it may have been lost
        with a broker that restarted empty). Reports are idempotent, so a duplicate is harmless."""
        resent = 0
        for job_id, attempt, resend in self.attempts.unconfirmed_due():
            if self.cancel_watch.is_cancelled_now(job_id, attempt):  # the flag confirms: attempt over
                self.attempts.confirmed(job_id, attempt)
                continue
            logger.warning(
                "final report of job %s attempt %s not confirmed yet; sending it again", job_id, attempt
            )
            resend()
            resent += 1
        return resent

    def _report_final(self, job_id: str, attempt: int, send: Callable[[], None]) -> None:
        send()
        self.attempts.finished(job_id, attempt, resend=send)

    def _run(self, spec: JobSpec, job_id: str, attempt: int) -> str:
        with logs.log_context(job_id=job_id, workflow_id=spec.workflow_id):
            return self._run_attempt(spec, job_id, attempt)

    def _run_attempt(self, spec: JobSpec, job_id: str, attempt: int) -> str:
        lease = spec.lease
        if self.cancel_watch.is_cancelled_now(job_id, attempt):
            self._report_final(job_id, attempt, lambda: self.reporter.cancelled(job_id, attempt, lease))
            return "cancelled"
        if self.hand_back.is_set():
            self._report_final(job_id, attempt, lambda: self.reporter.handed_back(job_id, attempt, lease))
            return HANDED_BACK
        connector = self.connectors.get(spec.type)
        if connector is None:
            # The dispatcher never sends such a job; a stale registry could.
            error = attempt_error("UNSUPPORTED_JOB_TYPE", f"no connector runs {spec.type!r}", "permanent")
            self._report_final(job_id, attempt, lambda: self.reporter.failed(job_id, attempt, lease, error))
            return "failed"

        def report_progress(progress: int, stage: str = "") -> None:
            self.reporter.progress(job_id, attempt, lease, progress, stage)

        context = JobContext(
            spec=spec,
            report_progress=report_progress,
            is_cancelled=_either(self.cancel_watch.checker(job_id, attempt), self.hand_back.is_set),
            deadline=_deadline(spec.timeout_seconds),
        )
        started_report = threading.Timer(
            self.started_report_delay_s, self.reporter.started, (job_id, attempt, lease)
        )
        started_report.daemon = True
        began = time.monotonic()
        started_report.start()
        try:
            outcome, detail = self._execute_within_limits(connector, context)
        finally:
            started_report.cancel()
        runtime_ms = int((time.monotonic() - began) * 1000)
        if outcome == "completed":
            send = lambda: self.reporter.succeeded(job_id, attempt, lease, detail, runtime_ms)
        elif (
            outcome == "cancelled"
            and self.hand_back.is_set()
            and not self.cancel_watch.is_cancelled_now(job_id, attempt)
        ):
            outcome = HANDED_BACK
            send = lambda: self.reporter.handed_back(job_id, attempt, lease, runtime_ms)
        elif outcome == "cancelled":
            send = lambda: self.reporter.cancelled(job_id, attempt, lease, runtime_ms)
        else:
            send = lambda: self.reporter.failed(job_id, attempt, lease, detail, runtime_ms)
        self._report_final(job_id, attempt, send)
        metrics.count_attempt(spec.type, outcome, detail)
        if outcome == ABANDONED and self.on_stuck_job is not None:
            self.on_stuck_job(job_id)  # after the report, so the control plane knows first
        return outcome

    def _execute_within_limits(self, connector: Connector, context: JobContext) -> tuple[str, JsonValue]:
        """Run the connector in a thread of its own, so a job deaf to its time limit cannot hold the
        slot (and its report) forever."""
        job_id = context.spec.job_id
        done: list[tuple[str, JsonValue]] = []
        thread = threading.Thread(
            target=lambda: done.append(_execute(connector, context, self.result_max_bytes)),
            name=f"job-{job_id}",
            daemon=True,
        )
        thread.start()
        thread.join(context.time_left() if context.deadline != float("inf") else None)
        if thread.is_alive():
            context.interrupted.set()  # soft limit: `checkpoint` and `sleep` raise JobTimedOut now
            thread.join(self.hard_timeout_grace_s)
        if done:
            return done[0]
        logger.error(
            "job %s ignored its timeout for %.0fs more; giving it up", job_id, self.hard_timeout_grace_s
        )
        message = (
            f"job exceeded its timeout of {context.spec.timeout_seconds}s and did not stop "
            f"within {self.hard_timeout_grace_s:.0f}s more (hard limit)"
        )
        return ABANDONED, attempt_error("TIMEOUT", message)


def _execute(connector: Connector, context: JobContext, result_max_bytes: int) -> tuple[str, JsonValue]:
    """Run the connector; returns ("completed", result), ("failed", error) or ("cancelled", None)."""
    try:
        result = connector.run(context)
    except JobCancelled:
        return "cancelled", None
    except ConnectorError as exc:
        return "failed", exc.as_report()
    except Exception as exc:  # a connector bug must not take the worker down
        logger.exception("connector %s crashed on job %s", connector.name, context.spec.job_id)
        return "failed", attempt_error("CONNECTOR_CRASHED", f"{type(exc).__name__}: {exc}")
    try:
        return "completed", storable(result, result_max_bytes)
    except ResultTooLarge as exc:
        return "failed", attempt_error("RESULT_TOO_LARGE", str(exc), "permanent")
    except (TypeError, ValueError) as exc:
        return "failed", attempt_error("INVALID_RESULT", f"result is not JSON: {exc}", "permanent")


def _either(first: Callable[[], bool], second: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: first() or second()


def _deadline(timeout_seconds: float | None) -> float:
    return time.monotonic() + float(timeout_seconds) if timeout_seconds else float("inf")
