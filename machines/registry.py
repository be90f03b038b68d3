"""The registry's records: workers' registration, heartbeats and deregistration as they report them,
machines' status and draining. What follows for their jobs and for dispatch is the control plane's
(`dispatch/worker_reports.py`); nothing here offers work or touches a job."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models.functions import Now

from events.recording import record_machine_event, record_worker_event
from events.types import EventType
from machines.models import Machine, MachineStatus, Worker, WorkerStatus
from wire import names
from wire.json_types import JsonObject

_REGISTERED_FIELDS = (
    "machine_id",
    "hostname",
    "pool",
    "job_types",
    "capabilities",
    "model_names",
    "gpu_memory_gb",
    "gpu_index",
    "gpu_name",
    "slots",
    "customer_allowlist",
    "customer_denylist",
    "customers_tenant_id",
)


class Heartbeat(enum.Enum):
    REFRESHED = "refreshed"  # a live instance, as it was: nothing changed for dispatch
    AVAILABLE = "available"  # it came back from offline, or its engine recovered: it may take work again
    STOPPING = "stopping"  # refreshed, but the instance deregistered: it only finishes its last job
    UNKNOWN = "unknown"  # not this worker's current instance (its registration was lost, or reset)


def register_worker(info: JsonObject) -> tuple[Worker, bool] | None:
    """Create or refresh a worker from its self-description; returns it, and whether it is a new
    instance of a worker already known (its process restarted). None when the worker holds no active
    credential (revoked while its registration waited in its lane)."""
    worker_id = str(info["worker_id"])
    fields = {name: info[name] for name in _REGISTERED_FIELDS if name in info}
    extra = {
        k: v for k, v in info.items() if k not in _REGISTERED_FIELDS and k not in {"worker_id", "instance_id"}
    }
    health = info.get("health") or {}
    with transaction.atomic():
        if not _holds_credential(worker_id):
            return None
        previous = Worker.objects.select_for_update().filter(pk=worker_id).first()
        machine = _register_machine(str(info["machine_id"]), info)
        registered = {
            **fields,
            "instance_id": info["instance_id"],
            "queue": names.worker_queue(worker_id),
            "status": WorkerStatus.IDLE,
            "last_seen_at": Now(),
            "stopped_at": None,
            "draining": machine.draining,
            "engine_healthy": health.get("healthy", True),
            "health_detail": str(health.get("detail", ""))[:500],
            "telemetry": info.get("telemetry") or {},
            "info": extra,
        }
        new_instance = previous is not None and previous.instance_id != info["instance_id"]
        # One statement either way (a join storm registers a fleet one worker at a time).
        worker = previous or Worker(id=worker_id)
        for name, value in registered.items():
            setattr(worker, name, value)
        if previous is None:
            worker.save(force_insert=True)
        else:
            worker.save(update_fields=list(registered))
        record_worker_event(
            EventType.WORKER_REGISTERED,
            worker.id,
            worker.machine_id,
            {"pool": worker.pool, "job_types": worker.job_types, "restarted": previous is not None},
        )
        if worker.engine_healthy:  # a live worker with a healthy engine: its machine is online
            _set_machine_status(machine, MachineStatus.ONLINE)
        else:
            refresh_machine_status(machine.id)
    return worker, new_instance


@dataclass(frozen=True)
class Beat:
    """One heartbeat as a worker sends it: its instance, telemetry, engine health, attempts it holds."""

    worker_id: str
    instance_id: str
    info: JsonObject
    description: JsonObject | None = None  # repeated from its registration, already checked

    def row(self) -> JsonObject:
        health = self.info.get("health") or {}
        seen = self.info.get("seen_attempts")
        return {
            "id": self.worker_id,
            "instance_id": self.instance_id,
            "telemetry": self.info.get("telemetry") or {},
            "seen": seen if isinstance(seen, list) else None,
            "healthy": bool(health.get("healthy", True)),
            "detail": str(health.get("detail", ""))[:500],
            "sent_at": self.info.get("sent_at"),
        }


# Every heartbeat of a batch in one statement: worker rows locked in id order (as every multi-worker
# locker does), refreshed, and for each the facts that decide what follows. The attempts a worker
# holds are dated by when it sent them (`sent_at`, its clock; never later than now): a heartbeat
# that waited in a lagging lane must not make an attempt it received meanwhile look undelivered
# (`dispatch.recovery.requeue_undelivered_assignments`), which would run it twice. A worker clock
# behind ours only delays that recovery; one ahead counts as now. `old` is the row before
# the update (a self-join in UPDATE ... FROM sees the statement's snapshot).
_APPLY_HEARTBEATS = """
    WITH beat AS (
        SELECT * FROM jsonb_to_recordset(%(beats)s::jsonb)
            AS b(id text, instance_id text, telemetry jsonb, seen jsonb, healthy boolean, detail text,
                 sent_at double precision)
    ), old AS (
        SELECT w.id, w.engine_healthy FROM machines_worker w
        JOIN beat b ON b.id = w.id AND b.instance_id = w.instance_id
        ORDER BY w.id FOR UPDATE OF w
    )
    UPDATE machines_worker w
    SET last_seen_at = now(), telemetry = b.telemetry, engine_healthy = b.healthy,
        health_detail = b.detail, seen_attempts = coalesce(b.seen, w.seen_attempts),
        seen_reported_at = CASE WHEN b.seen IS NULL THEN w.seen_reported_at
                                ELSE least(now(), coalesce(to_timestamp(b.sent_at), now())) END
    FROM beat b JOIN old ON old.id = b.id
    WHERE w.id = b.id
    RETURNING w.id, w.status, w.stopped_at IS NOT NULL, old.engine_healthy <> b.healthy, b.healthy
"""


def heartbeats(beats: Sequence[Beat]) -> dict[str, Heartbeat]:
    """Apply a batch of heartbeats; what each means for dispatch, by worker id.

    A worker's latest heartbeat of the batch says everything its earlier ones did. A stopping
    instance keeps heartbeating while it finishes its last job (so that job's lease holds), but is
    never brought back to taking work. The common case (nothing changed) costs its row in one
    statement for the whole batch: a fleet's heartbeats are most of the control plane's messages.
    """
    latest = {beat.worker_id: beat for beat in beats}
    if not latest:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_APPLY_HEARTBEATS, {"beats": json.dumps([beat.row() for beat in latest.values()])})
        applied = {row[0]: row[1:] for row in cursor.fetchall()}
    outcomes = {}
    for worker_id in latest:
        if worker_id not in applied:
            outcomes[worker_id] = Heartbeat.UNKNOWN
            continue
        status, stopped, health_changed, healthy = applied[worker_id]
        if stopped:
            outcomes[worker_id] = Heartbeat.STOPPING
        elif status != WorkerStatus.OFFLINE and not health_changed:
            outcomes[worker_id] = Heartbeat.REFRESHED
        else:
            outcomes[worker_id] = _back_or_health_changed(worker_id, healthy)
    return outcomes


def _back_or_health_changed(worker_id: str, healthy: bool) -> Heartbeat:
    """A silent worker is heard again, or its engine's health changed: its status and its machine's.
    One whose credential was revoked stays offline (it was cut off, not silent)."""
    with transaction.atomic():
        credentialed = _holds_credential(worker_id)
        worker = Worker.objects.select_for_update().get(pk=worker_id)
        if worker.status == WorkerStatus.OFFLINE and not credentialed:
            return Heartbeat.STOPPING
        if worker.status == WorkerStatus.OFFLINE:
            _set_status(worker, WorkerStatus.IDLE)
        else:
            refresh_machine_status(worker.machine_id)
    return Heartbeat.AVAILABLE if healthy else Heartbeat.REFRESHED


def deregister_worker(worker_id: str, instance_id: str) -> None:
    """A graceful stop: the worker takes no more jobs."""
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(pk=worker_id, instance_id=instance_id).first()
        if worker is not None:
            Worker.objects.filter(pk=worker_id).update(stopped_at=Now())
            _set_status(worker, WorkerStatus.OFFLINE)


def _holds_credential(worker_id: str) -> bool:
    """In the caller's transaction, before the worker's row is locked (the order revocation takes):
    whether the worker holds an active credential, its row locked FOR SHARE so that a revocation
    waits for this transaction, then marks the worker offline (`cut_off`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM machines_workercredential WHERE worker_id = %s AND revoked_at IS NULL FOR SHARE",
            [worker_id],
        )
        return cursor.fetchone() is not None


def cut_off(worker_id: str) -> None:
    """The worker's credential was revoked: it is offline at once (it gets no work; its attempts'
    leases expire, as a silent worker's do), whatever its last heartbeat said."""
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(pk=worker_id).first()
        if worker is not None and worker.status != WorkerStatus.OFFLINE:
            _set_status(worker, WorkerStatus.OFFLINE)


def mark_silent_workers_offline() -> int:
    """Workers whose heartbeats stopped are offline (they get no work; their jobs are recovered)."""
    marked = 0
    with transaction.atomic():
        silent = Worker.objects.silent().select_for_update(skip_locked=True)
        for worker in silent.exclude(status=WorkerStatus.OFFLINE):
            _set_status(worker, WorkerStatus.OFFLINE)
            marked += 1
    return marked


def _set_status(worker: Worker, status: WorkerStatus) -> None:
    previous = worker.status
    worker.status = status
    worker.save(update_fields=["status"])
    record_worker_event(
        EventType.WORKER_STATUS_CHANGED, worker.id, worker.machine_id, {"from": previous, "to": status}
    )
    refresh_machine_status(worker.machine_id)


# Create or refresh a machine in one statement, its row locked; `xmax = 0`: this statement inserted it.
_UPSERT_MACHINE = """
    INSERT INTO machines_machine AS m
        (id, hostname, pool, gpus, cpu_count, ram_gb, software, labels, status, draining)
    VALUES (%(id)s, %(hostname)s, %(pool)s, %(gpus)s::jsonb, %(cpu_count)s, %(ram_gb)s, %(software)s::jsonb,
            %(labels)s::jsonb, %(status)s, false)
    ON CONFLICT (id) DO UPDATE SET
        hostname = EXCLUDED.hostname, pool = EXCLUDED.pool, gpus = EXCLUDED.gpus,
        cpu_count = EXCLUDED.cpu_count, ram_gb = EXCLUDED.ram_gb, software = EXCLUDED.software,
        labels = EXCLUDED.labels, last_seen_at = now()
    RETURNING m.xmax = 0, m.status, m.draining
"""


def _register_machine(machine_id: str, info: JsonObject) -> Machine:
    """Create or refresh the machine a registering worker runs on (locked, after the worker)."""
    described = info.get("machine") or {}
    fields = {
        "hostname": info.get("hostname", ""),
        "pool": info.get("pool", "standard"),
        "gpus": described.get("gpus", []),
        "cpu_count": described.get("cpu_count"),
        "ram_gb": described.get("ram_gb"),
        "software": described.get("software", {}),
        "labels": described.get("labels", {}),
    }
    as_json = {name: json.dumps(fields[name]) for name in ("gpus", "software", "labels")}
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_MACHINE, {**fields, **as_json, "id": machine_id, "status": MachineStatus.STARTING}
        )
        created, status, draining = cursor.fetchone()
    machine = Machine(id=machine_id, status=status, draining=draining, **fields)
    machine._state.adding = False
    if created:
        record_machine_event(
            EventType.MACHINE_REGISTERED,
            machine_id,
            {"hostname": machine.hostname, "pool": machine.pool, "gpu_count": len(machine.gpus)},
        )
    return machine


def refresh_machine_status(machine_id: str) -> Machine | None:
    """A machine is online while a worker of its is live, in error when every live one's engine is
    failing, offline when none is live; each change is a `machine_status_changed` event."""
    machine = Machine.objects.select_for_update().filter(pk=machine_id).first()
    if machine is None:
        return None
    live = Worker.objects.live().filter(machine_id=machine_id)
    if not live.exists():
        status = MachineStatus.OFFLINE
    elif not live.filter(engine_healthy=True).exists():
        status = MachineStatus.ERROR
    else:
        status = MachineStatus.ONLINE
    _set_machine_status(machine, status)
    return machine


def _set_machine_status(machine: Machine, status: MachineStatus) -> None:
    """The machine's status (its row locked by the caller), with an event when it changed."""
    machine_id = machine.id
    if status != machine.status:
        record_machine_event(
            EventType.MACHINE_STATUS_CHANGED,
            machine_id,
            {"from": machine.status, "to": status, "draining": machine.draining},
        )
        machine.status = status
        machine.save(update_fields=["status"])


def set_draining(machine_id: str, draining: bool) -> Machine:
    """Drain (no new work; running jobs finish) or resume a machine."""
    with transaction.atomic():
        Worker.objects.filter(machine_id=machine_id).update(draining=draining)  # workers first, as everywhere
        machine = Machine.objects.select_for_update().get(pk=machine_id)
        if machine.draining != draining:
            machine.draining = draining
            machine.save(update_fields=["draining"])
            record_machine_event(
                EventType.MACHINE_STATUS_CHANGED,
                machine_id,
                {"from": machine.status, "to": machine.status, "draining": draining},
            )
    return machine
