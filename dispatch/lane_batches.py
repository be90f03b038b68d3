"""GPU workers' messages applied in batches: what `manage.py consume_lanes` runs for the report and
fleet lanes (taking, decoding at the edge, acknowledgement and retries: `core.batch_consumer`).

A batch of reports is one transaction: every report is still its own compare-and-set on job id and
attempt (`dispatch/reports.py`), each worker whose slot freed is refilled once at the end, and
workers are told their final reports arrived only after the commit. A batch of heartbeats is one
statement (`machines.registry.heartbeats`). Registrations and deregistrations are rare and applied
one by one, in the order they came, before the batch's heartbeats. The fleet lane offers no work: the
workers that registered or became able to take work are offered it by the sweeps worker once the
batch committed (`dispatch.offers`), so no heartbeat ever waits behind a read of the pending set.

Every message arrives typed and bounded (`wire/`), with its sender: the worker whose own list it was
taken from, which only that worker's broker user may write to. A message acts for its sender only:
a job report is applied only if it carries a lease token of an attempt given to its sender, a fleet
message only while its sender holds an active credential, and a description only if it names its
sender (and its credential's machine) and stays within its credential's pool and customers.
Anything else is ignored and counted against the sender (`dispatch/refusals.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import msgspec
import redis
from django.db import transaction

from accounts.models import Tenant
from core.batch_consumer import Refusal
from counters.definitions import LATENCY_BUCKETS, Metric
from counters.tally import Tally
from dispatch import cancel_flags, offers, refusals, reports, worker_reports
from jobqueue.models import Job
from machines import credentials, lane_lag, registry
from machines.models import WorkerCredential
from wire import edge, logs, names
from wire.fleet import Deregister, Description, FleetMessage, Heartbeat, Register, description_dict
from wire.json_types import JsonObject
from wire.reports import (
    Cancelled,
    Failed,
    FinalReport,
    HandedBack,
    JobReport,
    Progress,
    Started,
    Succeeded,
)

logger = logging.getLogger(__name__)

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


def apply_batch(batch: Sequence[edge.Decoded]) -> None:
    """Apply whatever mix of fleet messages and reports arrived (a consumer may serve both lanes)."""
    fleet = [d for d in batch if isinstance(d.message, FleetMessage)]
    if fleet:
        apply_fleet(fleet)
    job_reports = [d for d in batch if isinstance(d.message, JobReport)]
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


def apply_fleet(batch: Sequence[edge.Decoded]) -> None:
    """Registrations and deregistrations one by one, then the heartbeats in one statement. A message
    whose sender holds no active credential, or whose description speaks for another worker or
    beyond its credential, is refused alone: counted against its sender, dropped."""
    started = time.monotonic()
    holders = credentials.active({d.sender for d in batch})
    beats: list[registry.Beat] = []
    refused: list[Refusal] = []
    to_offer: list[str] = []
    for decoded in batch:
        credential, message = holders.get(decoded.sender), decoded.message
        if credential is None:
            refused.append(Refusal(names.FLEET_LANE, decoded.sender, "no_credential"))
        elif isinstance(message, Register):
            described = _described(credential, message.description, refused)
            if described is not None and worker_reports.register_worker(described) is not None:
                to_offer.append(decoded.sender)
        elif isinstance(message, Deregister):
            registry.deregister_worker(decoded.sender, message.instance_id)
        elif isinstance(message, Heartbeat):
            # A heartbeat repeats its worker's description, from which an unknown instance registers
            # again: it is held to the sender and its credential as a registration is.
            if message.description is None:
                beats.append(registry.Beat(decoded.sender, message.instance_id, message.facts()))
            elif (described := _described(credential, message.description, refused)) is not None:
                beats.append(registry.Beat(decoded.sender, message.instance_id, message.facts(), described))
    if refused:
        refusals.record(refused)
    if beats:
        to_offer += worker_reports.heartbeats(beats)
    # Made elsewhere, once this batch committed: offers must never hold heartbeats back.
    transaction.on_commit(lambda: offers.request(to_offer))
    now = time.time()
    lags = [now - beat.info["sent_at"] for beat in beats if beat.info.get("sent_at") is not None]
    lane_lag.record(lags)
    try:
        _measured(names.FLEET_LANE, len(batch), started, lags).flush()
    except Exception:  # the batch is applied: losing its measures must not apply it again
        logger.warning("could not record a fleet batch's metrics", exc_info=True)


def _described(
    credential: WorkerCredential, description: Description, refused: list[Refusal]
) -> JsonObject | None:
    """The description as the registry stores it, if it names its sender (and the machine its
    credential was issued for) and stays within the credential: its pool, and only customers the
    credential names (when it names any), which are its credential's tenant's (the default tenant's
    when it names none). Otherwise None, and why in `refused`."""
    sender = credential.worker_id
    if description.worker_id != sender or (
        credential.machine_id and description.machine_id != credential.machine_id
    ):
        detail = f"names worker {description.worker_id} on machine {description.machine_id}"
        refused.append(Refusal(names.FLEET_LANE, sender, "description_not_sender", detail=detail))
        return None
    allowlist = set(description.customer_allowlist)
    beyond = description.pool != credential.pool or bool(
        credential.customers and (not allowlist or allowlist - set(credential.customers))
    )
    if beyond:
        refused.append(Refusal(names.FLEET_LANE, sender, "registration_beyond_credential"))
        return None
    described = description_dict(description)
    if allowlist:  # only a dedication names whose customers; most workers have none (no query)
        described["customers_tenant_id"] = credential.customers_tenant_id or Tenant.default().pk
    return described


def apply_reports(batch: Sequence[edge.Decoded]) -> None:
    """One transaction for the batch (its measures too, so they cost no commit of their own); then the
    final reports' confirmations and the refused reports' counts, a round trip each."""
    started = time.monotonic()
    confirmations: list[tuple[str, str, int]] = []
    refused: list[Refusal] = []
    with transaction.atomic():
        freed: list[str | None] = []
        proven = _proven(batch, refused)
        for (job_id, attempt), sender, report in _in_job_order(_latest_progress_only(proven)):
            with logs.log_context(job_id=job_id, worker_id=sender):
                if isinstance(report, Started):
                    reports.report_started(job_id, attempt, sender, report.running_for_ms)
                elif isinstance(report, Progress):
                    reports.report_progress(job_id, attempt, report.progress, report.stage)
                elif isinstance(report, FinalReport):
                    job, refills = _end(report)
                    # Applied, or found stale: either way it arrived, and its worker may forget it.
                    confirmations.append((sender, job_id, attempt))
                    if job is not None and refills:
                        freed.append(job.worker_id)
        reports.refill(freed)
        _measured(names.CONTROL_LANE, len(batch), started).flush()
    if refused:
        refusals.record(refused)
    if confirmations:
        _confirm(confirmations)


def _end(report: FinalReport) -> tuple[Job | None, bool]:
    """End the attempt as the report says; and whether its worker's slot is refilled (a handed-back
    job's worker is stopping)."""
    job_id, attempt, runtime_ms = report.job_id, report.attempt, report.runtime_ms
    if isinstance(report, Succeeded):
        return reports.apply_succeeded(job_id, attempt, report.result, runtime_ms), True
    if isinstance(report, Failed):
        return reports.apply_failed(job_id, attempt, msgspec.to_builtins(report.error), runtime_ms), True
    if isinstance(report, Cancelled):
        return reports.apply_cancelled(job_id, attempt, runtime_ms), True
    assert isinstance(report, HandedBack)
    return reports.apply_handed_back(job_id, attempt, runtime_ms), False


Keyed = list[tuple[tuple[str, int], str, JobReport]]


def _proven(batch: Sequence[edge.Decoded], refused: list[Refusal]) -> Keyed:
    """The reports that carry a lease token of an attempt given to their sender, keyed by (job id,
    attempt), with their sender; the others go to `refused`."""
    presented = [
        ((d.message.job_id, d.message.attempt), d.sender, d.message)
        for d in batch
        if isinstance(d.message, JobReport)
    ]
    holders = reports.lease_holders({(key, report.lease) for key, _, report in presented})
    proven: Keyed = []
    for key, sender, report in presented:
        if holders.get((key, report.lease)) == sender:
            proven.append((key, sender, report))
        else:
            refused.append(Refusal(names.CONTROL_LANE, sender, "report_lease_mismatch", detail=report.task))
    return proven


def _latest_progress_only(batch: Keyed) -> Keyed:
    """A job's progress reports in one batch: only its last says anything still true."""
    last = {key: index for index, (key, _, report) in enumerate(batch) if isinstance(report, Progress)}
    return [
        (key, sender, report)
        for index, (key, sender, report) in enumerate(batch)
        if not isinstance(report, Progress) or last[key] == index
    ]


def _in_job_order(batch: Keyed) -> Keyed:
    """Job rows are locked in id order, as by every batch (no deadlock between two consumers); a
    job's own reports keep their order (the sort is stable)."""
    return sorted(batch, key=lambda keyed: keyed[0][0])


def _confirm(confirmations: list[tuple[str, str, int]]) -> None:
    """Final reports were applied (or found already applied or stale): their workers may forget them.
    Unconfirmed reports are re-sent, so a report lost with a broker that restarted empty arrives."""
    try:
        cancel_flags.confirm_final_reports(confirmations)
    except redis.RedisError:
        logger.warning(
            "could not confirm %d final report(s); their workers will send them again", len(confirmations)
        )
