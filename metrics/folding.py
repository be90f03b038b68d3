"""The job metrics, folded from the event log by one of the relay's consumers (settings.EVENT_CONSUMERS)
through its own cursor: a count moves in the same transaction as the cursor, so every event is counted
exactly once, whichever process recorded it, and counts survive the events' pruning."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings

from counters.definitions import JOB_SECONDS_BUCKETS, LATENCY_BUCKETS, Metric
from counters.tally import Tally, totals
from events.cursors import consume_events, run_consumer
from events.models import Event
from events.types import JOB_ENDINGS, WORKFLOW_ENDINGS, EventType
from jobqueue.models import Job, JobKey
from wire.json_types import JsonObject

CURSOR = "metrics"
OTHER = "other"  # a label value past the bound (METRICS_MAX_LABEL_VALUES)

JOBS_SUBMITTED = Metric("jobs_submitted_total", "Jobs submitted.", ("job_type",))
JOBS_PROCESSED = Metric("jobs_processed_total", "Jobs that reached a final status.", ("job_type", "status"))
JOBS_FAILED = Metric(
    "jobs_failed_total", "Jobs failed for good, by their last error's code.", ("job_type", "error_class")
)
ATTEMPTS_RETRIED = Metric(
    "job_attempts_retried_total", "Failed attempts followed by a retry.", ("job_type", "error_class")
)
DEAD_LETTERS = Metric("dead_letters_total", "Jobs dead-lettered.", ("job_type", "reason"))
JOB_DURATION = Metric(
    "job_duration_seconds", "From a job's start to its end.", ("job_type",), JOB_SECONDS_BUCKETS
)
JOB_QUEUE_WAIT = Metric(
    "job_queue_wait_seconds",
    "From a job becoming eligible to run to its start.",
    ("job_type",),
    JOB_SECONDS_BUCKETS,
)
DISPATCH_LATENCY = Metric(
    "dispatch_latency_seconds", "From a job becoming eligible to its assignment.", (), LATENCY_BUCKETS
)
WORKFLOWS_FINISHED = Metric("workflows_finished_total", "Workflows that ended.", ("status",))
ENDPOINTS_DISABLED = Metric("webhook_endpoints_disabled_total", "Webhook endpoints disabled for failing.")
EVENTS_FOLDED = Metric("events_total", "Events recorded in the log.", ("type",))


class BoundedLabels:
    """Label values that come from clients (job types, error codes) kept to a bounded set: the first
    METRICS_MAX_LABEL_VALUES values of a label seen in the counters, then `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: dict[str, set[str]] | None = None

    def value(self, label: str, raw: str | None) -> str:
        known = self._stored().setdefault(label, set())
        value = (raw or "unknown")[:100]
        if value not in known:
            if len(known) >= self.limit:
                return OTHER
            known.add(value)
        return value

    def _stored(self) -> dict[str, set[str]]:
        """Every label's values already in the counters, read once."""
        if self._known is None:
            self._known = defaultdict(set)
            for series in totals().values():
                for key in series:
                    for label, value in json.loads(key).items():
                        if value != OTHER:
                            self._known[label].add(value)
        return self._known


_bounds: BoundedLabels | None = None


def fold(events: list[Event]) -> None:
    """Count `events` (inside the cursor's transaction)."""
    global _bounds
    if _bounds is None or _bounds.limit != settings.METRICS_MAX_LABEL_VALUES:
        _bounds = BoundedLabels(settings.METRICS_MAX_LABEL_VALUES)
    jobs = _jobs(event.job_id for event in events if event.job_id is not None)
    tally = Tally()
    for event in events:
        tally.add(EVENTS_FOLDED, {"type": event.type})
        if event.type in WORKFLOW_ENDINGS:
            tally.add(WORKFLOWS_FINISHED, {"status": WORKFLOW_ENDINGS[event.type]})
        elif event.type == EventType.WEBHOOK_ENDPOINT_DISABLED:
            tally.add(ENDPOINTS_DISABLED)
        elif event.job_id is not None:
            _fold_job_event(tally, _bounds, event, jobs.get(str(event.job_id)))
    tally.flush()


def _fold_job_event(tally: Tally, bounds: BoundedLabels, event: Event, job: JsonObject | None) -> None:
    job = job or {}
    job_type = bounds.value("job_type", event.payload.get("type") or job.get("type"))
    by_type = {"job_type": job_type}
    eligible_at = job.get("queued_at") or job.get("created_at")
    if event.type == EventType.JOB_SUBMITTED:
        tally.add(JOBS_SUBMITTED, by_type)
    elif event.type == EventType.JOB_ASSIGNED and eligible_at:
        tally.observe(DISPATCH_LATENCY, None, _seconds(eligible_at, event.created_at))
    elif event.type == EventType.JOB_STARTED and eligible_at:
        tally.observe(JOB_QUEUE_WAIT, by_type, _seconds(eligible_at, event.created_at))
    elif event.type in JOB_ENDINGS:
        tally.add(JOBS_PROCESSED, {**by_type, "status": JOB_ENDINGS[event.type]})
        # A worker that ends a job without saying it started (a fast one) ran it from its assignment.
        started_at = job.get("started_at") or job.get("assigned_at")
        if started_at and event.type != EventType.JOB_CANCELLED:
            tally.observe(JOB_DURATION, by_type, _seconds(started_at, event.created_at))
        if event.type == EventType.JOB_FAILED:
            tally.add(JOBS_FAILED, {**by_type, "error_class": _error_class(bounds, event)})
    elif event.type == EventType.JOB_RETRY_SCHEDULED:
        tally.add(ATTEMPTS_RETRIED, {**by_type, "error_class": _error_class(bounds, event)})
    elif event.type == EventType.JOB_DEAD_LETTERED:
        tally.add(DEAD_LETTERS, {**by_type, "reason": str(event.payload.get("reason", "unknown"))})


def _error_class(bounds: BoundedLabels, event: Event) -> str:
    error = event.payload.get("error")
    return bounds.value("error_class", error.get("code") if isinstance(error, dict) else None)


def _jobs(ids: Iterable[JobKey]) -> dict[str, JsonObject]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = Job.objects.filter(pk__in=wanted).values(
        "id", "type", "created_at", "queued_at", "assigned_at", "started_at"
    )
    return {str(row["id"]): dict(row) for row in rows}


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def fold_once() -> int:
    return consume_events(CURSOR, settings.METRICS_FOLD_BATCH, fold)


def run_metrics_pump(stop: threading.Event, wake: threading.Event | None = None) -> None:
    """Fold events until `stop` is set: at once when `wake` is set, and at least every poll."""
    poll = settings.EVENT_RELAY_POLL_SECONDS
    run_consumer("metrics pump", fold_once, lambda: poll, poll, stop, wake)
