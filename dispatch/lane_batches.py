"""GPU workers' messages applied in batches: what `manage.py consume_lanes` runs for the report and
fleet lanes (the consumer, acknowledgement and retries: `core.batch_consumer`).

A batch of reports is one transaction: every report is still its own compare-and-set on job id and
attempt (`dispatch/reports.py`), each worker whose slot freed is refilled once at the end, and
workers are told their final reports arrived only after the commit. A batch of heartbeats is one
statement (`machines.registry.heartbeats`). Registrations and deregistrations are rare and applied
one by one, in the order they came, before the batch's heartbeats.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from django.db import transaction

from core.batch_consumer import TaskMessage
from dispatch import cancel_flags, reports, worker_reports
from gpu_worker import protocol
from jobqueue.models import Job
from machines import descriptions, registry

logger = logging.getLogger(__name__)

# Reports that end an attempt, and whether the ended attempt's slot is refilled (a handed-back job's
# worker is stopping).
_FINAL_REPORTS: dict[str, tuple[Callable[..., Job | None], bool]] = {
    protocol.REPORT_SUCCEEDED_TASK: (reports.end_succeeded, True),
    protocol.REPORT_FAILED_TASK: (reports.end_failed, True),
    protocol.REPORT_CANCELLED_TASK: (reports.end_cancelled, True),
    protocol.REPORT_HANDED_BACK_TASK: (reports.end_handed_back, False),
}
_PROGRESS_REPORTS: dict[str, Callable[..., bool]] = {
    protocol.REPORT_STARTED_TASK: reports.job_started,
    protocol.REPORT_PROGRESS_TASK: reports.job_progress,
}
_WORKER_CHANGES: dict[str, Callable[..., Any]] = {
    protocol.REGISTER_WORKER_TASK: worker_reports.register_worker,
    protocol.DEREGISTER_WORKER_TASK: registry.deregister_worker,
}
_REPORT_SIGNATURES: dict[str, Callable[..., Any]] = {
    **{task: end for task, (end, _) in _FINAL_REPORTS.items()},
    **_PROGRESS_REPORTS,
}
LANE_TASKS = frozenset({*_FINAL_REPORTS, *_PROGRESS_REPORTS, *_WORKER_CHANGES, protocol.HEARTBEAT_TASK})


def apply_batch(batch: Sequence[TaskMessage]) -> None:
    """Apply whatever mix of fleet messages and reports arrived (a consumer may serve both lanes)."""
    unknown = [message.task for message in batch if message.task not in LANE_TASKS]
    if unknown:
        logger.error(
            "dropping %d message(s) of tasks no lane applies: %s", len(unknown), sorted(set(unknown))
        )
    fleet = [m for m in batch if m.task in _WORKER_CHANGES or m.task == protocol.HEARTBEAT_TASK]
    if fleet:
        apply_fleet(fleet)
    job_reports = [m for m in batch if m.task in _FINAL_REPORTS or m.task in _PROGRESS_REPORTS]
    if job_reports:
        apply_reports(job_reports)


def apply_fleet(batch: Sequence[TaskMessage]) -> None:
    """Registrations and deregistrations one by one, then the heartbeats in one statement. A message
    whose description breaks the rules (`machines.descriptions`) is refused alone: logged, dropped."""
    for message in batch:
        if message.task == protocol.REGISTER_WORKER_TASK:
            info = _refused_as_none(_registration, message)
            if info is not None:
                worker_reports.register_worker(info)
        elif message.task in _WORKER_CHANGES:
            _WORKER_CHANGES[message.task](*message.args, **message.kwargs)
    beats = [
        beat
        for message in batch
        if message.task == protocol.HEARTBEAT_TASK
        if (beat := _refused_as_none(_beat, message)) is not None
    ]
    if beats:
        worker_reports.heartbeats(beats)


T = TypeVar("T")


def _refused_as_none(read: Callable[[TaskMessage], T], message: TaskMessage) -> T | None:
    try:
        return read(message)
    except descriptions.Refused as refused:
        logger.warning("refused %s from a worker: %s", message.task.rpartition(".")[2], refused)
        return None


def _registration(message: TaskMessage) -> dict[str, Any]:
    return descriptions.checked_description(_arguments(worker_reports.register_worker, message)["info"])


def apply_reports(batch: Sequence[TaskMessage]) -> None:
    """One transaction for the batch; then the final reports' confirmations, in one round trip."""
    confirmations: list[tuple[str, int]] = []
    with transaction.atomic():
        freed: list[str | None] = []
        for (job_id, attempt), message in _in_job_order(_latest_progress_only(_by_attempt(batch))):
            if message.task in _PROGRESS_REPORTS:
                _PROGRESS_REPORTS[message.task](*message.args, **message.kwargs)
                continue
            end, refills = _FINAL_REPORTS[message.task]
            job = end(*message.args, **message.kwargs)
            confirmations.append((job_id, attempt))  # applied, or found stale: either way, it arrived
            if job is not None and refills:
                freed.append(job.worker_id)
        reports.refill(freed)
    if confirmations:
        _confirm(confirmations)


Keyed = list[tuple[tuple[str, int], TaskMessage]]


def _by_attempt(batch: Sequence[TaskMessage]) -> Keyed:
    """Each report with the (job id, attempt) it is about; a report whose arguments do not fit its
    task is refused here (TypeError)."""
    return [(_job_and_attempt(_REPORT_SIGNATURES[m.task], m), m) for m in batch]


def _latest_progress_only(batch: Keyed) -> Keyed:
    """A job's progress reports in one batch: only its last says anything still true."""
    last = {key: index for index, (key, m) in enumerate(batch) if m.task == protocol.REPORT_PROGRESS_TASK}
    return [
        (key, m)
        for index, (key, m) in enumerate(batch)
        if m.task != protocol.REPORT_PROGRESS_TASK or last[key] == index
    ]


def _in_job_order(batch: Keyed) -> Keyed:
    """Job rows are locked in id order, as by every batch (no deadlock between two consumers); a
    job's own reports keep their order (the sort is stable)."""
    return sorted(batch, key=lambda keyed: keyed[0][0])


def _arguments(func: Callable[..., Any], message: TaskMessage) -> dict[str, Any]:
    """The message's arguments by name; a message whose arguments do not fit is refused (TypeError)."""
    return _signature(func).bind(*message.args, **message.kwargs).arguments


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def _job_and_attempt(func: Callable[..., Any], message: TaskMessage) -> tuple[str, int]:
    arguments = _arguments(func, message)
    return str(arguments["job_id"]), int(arguments["attempt"])


def _beat(message: TaskMessage) -> registry.Beat:
    arguments = _arguments(worker_reports.heartbeat, message)
    worker_id, instance_id = arguments["worker_id"], arguments["instance_id"]
    info = descriptions.checked_beat(worker_id, instance_id, arguments.get("info"))
    return registry.Beat(worker_id, instance_id, info)


def _confirm(confirmations: list[tuple[str, int]]) -> None:
    """Final reports were applied (or found already applied or stale): their workers may forget them.
    Unconfirmed reports are re-sent, so a report lost with a broker that restarted empty arrives."""
    try:
        cancel_flags.confirm_final_reports(confirmations)
    except redis.RedisError:
        logger.warning(
            "could not confirm %d final report(s); their workers will send them again", len(confirmations)
        )
