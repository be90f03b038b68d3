"""GPU workers' messages applied in batches: what `manage.py consume_lanes` runs for the report and
fleet lanes (the consumer, acknowledgement and retries: `core.batch_consumer`).

A batch of reports is one transaction: every report is still its own compare-and-set on job id and
attempt (`dispatch/reports.py`), each worker whose slot freed is refilled once at the end, and
workers are told their final reports arrived only after the commit. A batch of heartbeats is one
statement (`machines.registry.heartbeats`). Registrations and deregistrations are rare and applied
one by one, in the order they came, before the batch's heartbeats.

Both lanes are shared by the whole fleet, so only a message's payload can say who wrote it: a job
report is applied only if it carries its attempt's lease token, a fleet message only if it carries
the key of the worker it speaks for, and a registration only within its credential's pool and
customers. Anything else is ignored and counted (`dispatch/refusals.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from django.db import transaction

from core.batch_consumer import TaskMessage
from counters.definitions import LATENCY_BUCKETS, Metric
from counters.tally import Tally
from dispatch import cancel_flags, refusals, reports, worker_reports
from gpu_worker import logs, protocol
from jobqueue.models import Job
from machines import credentials, descriptions, registry
from machines.models import WorkerCredential

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
LANE_BATCH_SECONDS = Metric(
    "lane_batch_seconds", "How long applying one batch of a lane took.", ("lane",), LATENCY_BUCKETS
)
LANE_MESSAGES = Metric("lane_messages_total", "Messages applied by each batched lane.", ("lane",))
HEARTBEAT_LAG = Metric(
    "worker_heartbeat_lag_seconds",
    "From a worker sending a heartbeat (its clock) to the fleet lane applying it.",
    (),
    LATENCY_BUCKETS,
)
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


def _measured(lane: str, messages: int, started: float, heartbeat_lags: Sequence[float] = ()) -> Tally:
    """A batch's measures: how long it took, how many messages, and its heartbeats' lags."""
    tally = Tally()
    tally.observe(LANE_BATCH_SECONDS, {"lane": lane}, time.monotonic() - started)
    tally.add(LANE_MESSAGES, {"lane": lane}, messages)
    for lag in heartbeat_lags:
        tally.observe(HEARTBEAT_LAG, None, lag)
    return tally


def apply_fleet(batch: Sequence[TaskMessage]) -> None:
    """Registrations and deregistrations one by one, then the heartbeats in one statement. A message
    that does not prove its sender, or whose description breaks the rules (`machines.descriptions`),
    is refused alone: counted, dropped."""
    started = time.monotonic()
    proven = _proven_fleet(batch)
    for message, credential in proven:
        if message.task == protocol.REGISTER_WORKER_TASK:
            info = _refused_as_none(_registration, message)
            if info is not None and _within(credential, info):
                worker_reports.register_worker(info)
        elif message.task in _WORKER_CHANGES:
            _WORKER_CHANGES[message.task](*message.args, **message.kwargs)
    # A heartbeat repeats its worker's description, from which an unknown instance registers again:
    # it is held to the credential as a registration is.
    beats = [
        beat
        for message, credential in proven
        if message.task == protocol.HEARTBEAT_TASK
        if (beat := _refused_as_none(_beat, message)) is not None
        if "worker_id" not in beat.info or _within(credential, beat.info)
    ]
    if beats:
        worker_reports.heartbeats(beats)
    now = time.time()
    lags = [now - beat.info["sent_at"] for beat in beats if isinstance(beat.info.get("sent_at"), int | float)]
    try:
        _measured(protocol.FLEET_QUEUE, len(batch), started, lags).flush()
    except Exception:  # the batch is applied: losing its measures must not apply it again
        logger.warning("could not record a fleet batch's metrics", exc_info=True)


def _proven_fleet(batch: Sequence[TaskMessage]) -> list[tuple[TaskMessage, WorkerCredential]]:
    """The fleet messages whose key is the credential of the worker they speak for (without the key
    from here on), each with that credential."""
    spoken: list[tuple[TaskMessage, str | None, Any]] = []
    for message in batch:
        message, key = _without(message, protocol.WORKER_KEY_ARG)
        spoken.append((message, _speaker(message), key))
    holders = credentials.active(worker_id for _, worker_id, _ in spoken)
    proven = []
    for message, worker_id, key in spoken:
        credential = holders.get(worker_id) if worker_id is not None else None
        if credential is None or not credentials.proves(credential, key):
            refusals.count("fleet_key_mismatch", detail=f"{message.task} for worker {str(worker_id)[:100]}")
        else:
            proven.append((message, credential))
    return proven


def _speaker(message: TaskMessage) -> str | None:
    """The worker a fleet message speaks for, if it names one."""
    func = worker_reports.register_worker if message.task == protocol.REGISTER_WORKER_TASK else None
    try:
        arguments = _arguments(func or _WORKER_CHANGES.get(message.task, worker_reports.heartbeat), message)
    except TypeError:
        return None
    if func is not None:
        info = arguments["info"]
        worker_id = info.get("worker_id") if isinstance(info, dict) else None
    else:
        worker_id = arguments.get("worker_id")
    return worker_id if isinstance(worker_id, str) else None


def _within(credential: WorkerCredential, info: dict[str, Any]) -> bool:
    """A registration stays within its credential: the credential's pool, and only customers the
    credential names (when it names any)."""
    allowlist = set(info.get("customer_allowlist") or [])
    beyond = info.get("pool", "standard") != credential.pool or bool(
        credential.customers and (not allowlist or allowlist - set(credential.customers))
    )
    if beyond:
        refusals.count("registration_beyond_credential", detail=f"worker {credential.worker_id}")
    return not beyond


T = TypeVar("T")


def _refused_as_none(read: Callable[[TaskMessage], T], message: TaskMessage) -> T | None:
    try:
        return read(message)
    except descriptions.Refused as refused:
        refusals.count("description_refused", detail=f"{message.task.rpartition('.')[2]}: {refused}")
        return None


def _registration(message: TaskMessage) -> dict[str, Any]:
    return descriptions.checked_description(_arguments(worker_reports.register_worker, message)["info"])


def apply_reports(batch: Sequence[TaskMessage]) -> None:
    """One transaction for the batch (its measures too, so they cost no commit of their own); then the
    final reports' confirmations, in one round trip."""
    started = time.monotonic()
    confirmations: list[tuple[str, str, int]] = []
    with transaction.atomic():
        freed: list[str | None] = []
        keyed, holders = _proven_reports(batch)
        for (job_id, attempt), message in _in_job_order(_latest_progress_only(keyed)):
            with logs.log_context(job_id=job_id, worker_id=holders.get((job_id, attempt))):
                if message.task in _PROGRESS_REPORTS:
                    _PROGRESS_REPORTS[message.task](*message.args, **message.kwargs)
                    continue
                end, refills = _FINAL_REPORTS[message.task]
                job = end(*message.args, **message.kwargs)
            # Applied, or found stale: either way it arrived, and its worker may forget it.
            confirmations.append((holders[(job_id, attempt)], job_id, attempt))
            if job is not None and refills:
                freed.append(job.worker_id)
        reports.refill(freed)
        _measured(protocol.CONTROL_QUEUE, len(batch), started).flush()
    if confirmations:
        _confirm(confirmations)


Keyed = list[tuple[tuple[str, int], TaskMessage]]


def _proven_reports(batch: Sequence[TaskMessage]) -> tuple[Keyed, dict[tuple[str, int], str]]:
    """The reports that carry their attempt's lease token (without it from here on), keyed by
    (job id, attempt), and the worker given each of those attempts."""
    leased = []
    for message in batch:
        message, lease = _without(message, protocol.LEASE_ARG)
        leased.append((_job_and_attempt(_REPORT_SIGNATURES[message.task], message), message, lease))
    holders = reports.lease_holders({(key, lease) for key, _, lease in leased})
    proven = [(key, message) for key, message, lease in leased if (key, lease) in holders]
    if len(proven) < len(leased):
        refusals.count("report_lease_mismatch", len(leased) - len(proven))
    return proven, {key: holders[(key, lease)] for key, _, lease in leased if (key, lease) in holders}


def _without(message: TaskMessage, name: str) -> tuple[TaskMessage, Any]:
    """The message without the keyword argument `name`, and its value (None when absent)."""
    if name not in message.kwargs:
        return message, None
    kwargs = dict(message.kwargs)
    value = kwargs.pop(name)
    return dataclasses.replace(message, kwargs=kwargs), value


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


def _confirm(confirmations: list[tuple[str, str, int]]) -> None:
    """Final reports were applied (or found already applied or stale): their workers may forget them.
    Unconfirmed reports are re-sent, so a report lost with a broker that restarted empty arrives."""
    try:
        cancel_flags.confirm_final_reports(confirmations)
    except redis.RedisError:
        logger.warning(
            "could not confirm %d final report(s); their workers will send them again", len(confirmations)
        )
