"""What the control plane does when workers register, heartbeat or are drained: the registry records
it (`machines/registry.py`), a restarted worker's lost attempts are failed, and the workers that may
take work now are named, for the caller to have them offered it (`dispatch.offers`: the fleet lane
never makes an offer itself)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dispatch.assignment import fill_worker
from dispatch.reports import worker_lost
from jobqueue.models import Job, JobStatus
from machines import registry
from machines.models import Machine, Worker
from wire.json_types import JsonObject

logger = logging.getLogger(__name__)


def register_worker(info: JsonObject) -> Worker | None:
    """Record the worker; the caller has it offered work.

    A new `instance_id` means the process restarted: whatever its previous instance was running is
    lost with it, so those attempts fail as `WORKER_LOST` (and are retried by the usual rules).
    Jobs merely assigned stay: their messages wait in the worker's queue for the new instance.
    """
    registered = registry.register_worker(info)
    if registered is None:
        logger.warning("worker %s registered without an active credential: refused", info.get("worker_id"))
        return None
    worker, restarted = registered
    # After the registry's transaction: failing a job locks its row and then the worker's, and holding
    # the worker's lock first could deadlock with a report doing the same in the documented order.
    if restarted:
        _fail_lost_attempts(worker.id)
    return worker


def heartbeats(beats: Sequence[registry.Beat]) -> list[str]:
    """Refresh the workers' leases, in one statement for the batch. A heartbeat from an unknown
    instance re-registers the worker from the self-description it carries. Returns the workers to
    offer work: those that became able to take it (back from offline, engine recovered, registered
    again). Otherwise a slot that frees is refilled by the report that freed it and new work by its
    submission, so a heartbeat never walks the pending jobs (the dispatch sweep covers races)."""
    outcomes = registry.heartbeats(beats)
    latest = {beat.worker_id: beat for beat in beats}
    to_offer = []
    for worker_id, beat in sorted(outcomes.items()):
        if beat is registry.Heartbeat.AVAILABLE or (
            beat is registry.Heartbeat.UNKNOWN and _register_again(latest[worker_id])
        ):
            to_offer.append(worker_id)
    return to_offer


def _register_again(beat: registry.Beat) -> bool:
    """A heartbeat of an instance the registry does not know: the worker registers again from the
    description the heartbeat repeats (checked against its sender and credential on the lane), if
    it carries one of this instance. Whether it did."""
    if beat.description is None or beat.description.get("instance_id") != beat.instance_id:
        return False
    return register_worker(beat.description) is not None


def set_draining(machine_id: str, draining: bool) -> Machine:
    """Drain (no new work; running jobs finish) or resume a machine. Resuming offers its workers work."""
    machine = registry.set_draining(machine_id, draining)
    if not draining:
        for worker_id in Worker.objects.filter(machine_id=machine_id).values_list("id", flat=True):
            fill_worker(worker_id)
    return machine


def _fail_lost_attempts(worker_id: str) -> None:
    running = Job.objects.filter(worker_id=worker_id, status=JobStatus.RUNNING).values_list("pk", "attempt")
    for job_id, attempt in running:
        worker_lost(job_id, attempt, "the worker restarted while running this job")
